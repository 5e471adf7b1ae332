import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { GitHttpServer } from '../support/git-http-server.js';
import { openForeignAddress, type ForeignAddress } from '../support/foreign-address.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';

/**
 * A `git` planted by setup never receives the repository's token (issue 21 item 8; a bypass an
 * adversarial review ran). The setup script writes /usr/local/bin/git (first on PATH) that, when
 * it sees BERTH_GIT_PASSWORD, writes it to a file and leaves a process holding it, then runs the
 * real git. Berth's checkout of the task's branch runs after setup on a cache miss (after the
 * stop and the scan) and in a sandbox from the cache image on a hit (no stop, no scan after it):
 * both must fetch on the host and give the sandbox a bundle, never the token. The private git
 * server is reached at an address of a network namespace on this machine (not one of the host's
 * own, which the host-side fetch never connects to: support/foreign-address.ts), opened for setup
 * and the host by its exact /32.
 */

const TOKEN = 'ghp-planted-7c1d4e9a2b';
const FRAGMENT = '7c1d4e9a2b';
const instance = `planted-git-${process.pid}`;
let remote: GitHttpServer;
let foreign: ForeignAddress;
let url: string;
let work: string;
let repo: ReturnType<typeof makeSampleRepository>;

beforeAll(async () => {
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-planted-git-'));
  execFileSync('git', ['clone', '-q', '--bare', repo.dir, join(work, 'app.git')]);
  remote = new GitHttpServer(work, 'berth-bot', TOKEN);
  foreign = openForeignAddress();
  await remote.start(foreign.hostAddress);
  const port = Number(new URL(remote.url('app.git')).port);
  await foreign.forward(port);
  url = `http://${foreign.address}:${port}/app.git`;
});

afterAll(async () => {
  await remote?.stop();
  await foreign?.close();
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

const SEARCH = String.raw`
sleep 1
if grep -qaF "${FRAGMENT}" /var/tmp/stolen 2>/dev/null; then echo "HIT file"; else echo "clean file"; fi
for d in /proc/[0-9]*; do if grep -qaF "${FRAGMENT}" $d/environ 2>/dev/null; then echo "HIT environ of $(cat $d/comm)"; fi; done
[ -e /var/tmp/planted-ran ] && echo "planted git ran" || echo "planted git did not run"
git rev-parse HEAD`;

describe('a git planted by setup (docker)', () => {
  it('never receives the repository token: the fetch after setup and from the cache image runs on the host', async () => {
    const image = lifecycleTestImage();
    const env = join(work, 'env.yaml');
    const planted = [
      '#!/bin/sh',
      'touch /var/tmp/planted-ran',
      'if [ -n "$BERTH_GIT_PASSWORD" ]; then echo "stolen=$BERTH_GIT_PASSWORD" > /var/tmp/stolen; setsid sleep 600 </dev/null >/dev/null 2>&1 & fi',
      'exec /usr/bin/git "$@"',
    ];
    writeFileSync(
      env,
      [
        'name: planted-git',
        'repository:',
        `  url: ${url}`,
        '  credentials:',
        '    secret: GIT_TOKEN',
        '    username: berth-bot',
        'image: minimal',
        'secrets: [GIT_TOKEN]',
        'setup: |',
        `  printf '%s\\n' ${planted.map((line) => `'${line.replace(/'/g, `'\\''`)}'`).join(' ')} > /usr/local/bin/git`,
        '  chmod +x /usr/local/bin/git',
        '',
      ].join('\n'),
    );
    const siteAllow = (process.env.BERTH_SETUP_ALLOW ?? '').split(',').filter(Boolean);
    const options = {
      dataDir: join(work, 'data'),
      instance,
      resolveImage: () => image,
      envFile: env,
      lookupSecret: (name: string) => (name === 'GIT_TOKEN' ? TOKEN : undefined),
      setupAllow: [...siteAllow, `${foreign.address}/32`],
      branch: 'feature',
      command: SEARCH,
    };
    const miss = await runJson(options);
    expect(miss.code, miss.stderr).toBe(0);
    expect(miss.result.attempts[0]?.cacheHit).toBe(false);
    const hit = await runJson(options);
    expect(hit.code, hit.stderr).toBe(0);
    expect(hit.result.attempts[0]?.cacheHit).toBe(true);
    for (const run of [miss, hit]) {
      const output = run.result.attempts[0]?.commands[0]?.output ?? '';
      // The planted git is there and ran (the checkout's own git calls), but without the token.
      expect(output).toContain('planted git ran');
      expect(output).toContain('clean file');
      expect(output).not.toContain('HIT');
      // The task's branch was checked out all the same.
      expect(output).toContain(repo.featureCommit);
    }
  }, 300_000);
});
