import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { CacheCollector } from '../../src/lifecycle/cache-collector.js';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Issue 20 item 6 through the CLI against `berth serve`: `env cache show` gives the size beyond
 * the base image and `stale` once the environment changed; `env cache reset` says what keeps an
 * image it could not remove (the attempt's snapshot, with its expiry), and the collector frees
 * the image once that is gone; the next task says the cache was reset by hand.
 */

const instance = `cachereset-${randomBytes(4).toString('hex')}`;
const baseImage = `berth-test-base:${instance}`;
let server: ServeHandle;
let auth: string[];
let dir: string;

function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8' }).trim();
}

function imageExists(id: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', id], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  server = await startServe(['--allow-local-repos'], { BERTH_INSTANCE: instance });
  auth = ['--url', server.url, '--token', server.adminToken];
  dir = tempDir('cache-reset');
}, 60_000);

afterAll(async () => {
  await server?.stop();
  removeInstanceImages(instance);
  try {
    execFileSync('docker', ['rmi', baseImage], { stdio: 'ignore' });
  } catch {
    // not made
  }
});

interface CacheJson {
  entries: {
    image: string;
    imageId: string;
    state: string;
    staleBecause: string[];
    sizeBeyondBaseBytes: number | null;
    sizeBytes: number;
  }[];
}

describe('env cache show and reset (docker)', () => {
  it('shows the size beyond the base and stale; reset says what keeps the image, freed once it goes', async () => {
    const repo = makeSampleRepository();
    // The environment's image is a name of this test's own, so it can be rebuilt here.
    docker('tag', lifecycleTestImage(), baseImage);
    const yaml = (setup: string) =>
      `name: cached\nrepository: ${repo.dir}\nimage: ${baseImage}\nsecrets: [TOKEN]\nsetup: ${setup}\n`;
    const file = join(dir, 'cached.yaml');
    // The setup adds about 3 MB to the base image.
    writeFileSync(file, yaml('head -c 3000000 /dev/urandom > /tmp/blob'));
    expect(
      (await runBerth(['env', 'create', '--file', file, '--secret', 'TOKEN=first', ...auth])).code,
    ).toBe(0);
    const task = await runBerth([
      'exec',
      '--env',
      'cached',
      '--command',
      'true',
      '--wait',
      '--json',
      ...auth,
    ]);
    expect(task.code, task.stderr).toBe(0);
    // The first built the entry in its own sandbox; this one resumes from the entry's image, so
    // its snapshot is committed on that image.
    const resumed = await runBerth([
      'exec',
      '--env',
      'cached',
      '--command',
      'true',
      '--wait',
      '--json',
      ...auth,
    ]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const attemptId = (JSON.parse(resumed.stdout) as { attempts: { id: string }[] }).attempts[0]
      ?.id;

    const show = async () => {
      const json = await runBerth(['env', 'cache', 'show', 'cached', '--json', ...auth]);
      expect(json.code, json.stderr).toBe(0);
      const text = await runBerth(['env', 'cache', 'show', 'cached', ...auth]);
      return { view: JSON.parse(json.stdout) as CacheJson, text: text.stdout };
    };
    const first = await show();
    const [entry] = first.view.entries;
    expect(entry?.state).toBe('live');
    expect(entry?.sizeBeyondBaseBytes).toBeGreaterThan(2_900_000);
    expect(entry?.sizeBeyondBaseBytes).toBeLessThan(entry?.sizeBytes ?? 0);
    expect(first.text).toMatch(/\b3 MB beyond the base \(\d+ MB in all\)/);

    // A secret's value changes (the key holds its salted digest): stale.
    expect(
      (
        await runBerth([
          'env',
          'update',
          'cached',
          '--file',
          file,
          '--secret',
          'TOKEN=second',
          ...auth,
        ])
      ).code,
    ).toBe(0);
    const afterSecret = await show();
    expect(afterSecret.view.entries[0]).toMatchObject({
      state: 'stale',
      staleBecause: ['secrets'],
    });
    expect(afterSecret.text).toContain('stale (secrets changed)');
    // The base image is rebuilt under the same name (another image id): stale.
    const context = tempDir('rebuilt-base');
    writeFileSync(
      join(context, 'Dockerfile'),
      `FROM ${lifecycleTestImage()}\nLABEL rebuilt=${instance}\n`,
    );
    docker('build', '-q', '-t', baseImage, context);
    const afterBase = await show();
    expect(afterBase.view.entries[0]).toMatchObject({
      state: 'stale',
      staleBecause: ['baseImage', 'secrets'],
    });
    expect(afterBase.text).toContain('stale (base image, secrets changed)');
    // The environment changes: the entry's key no longer matches it.
    writeFileSync(file, yaml('echo another setup'));
    expect((await runBerth(['env', 'update', 'cached', '--file', file, ...auth])).code).toBe(0);
    const second = await show();
    expect(second.view.entries[0]).toMatchObject({
      state: 'stale',
      staleBecause: ['setup', 'baseImage', 'secrets'],
    });
    expect(second.text).toContain('stale (setup, base image, secrets changed)');

    // The attempt's snapshot was committed on the cache image: the engine keeps the image.
    const reset = await runBerth(['env', 'cache', 'reset', 'cached', ...auth]);
    expect(reset.code, reset.stderr).toBe(0);
    const snapshot = `berth-snapshot:${(attemptId ?? '').replace(/_/g, '-')}`;
    expect(reset.stdout).toContain('dropped 1 cache entry');
    expect(reset.stdout).toContain(`kept by snapshot ${snapshot} (attempt ${attemptId}) until 20`);
    expect((await show()).view.entries).toEqual([]);
    expect(imageExists(entry?.imageId ?? '')).toBe(true);

    // The snapshot goes (its time is up): the collector's next pass frees the cache image.
    docker('rmi', snapshot);
    const store = SqliteStore.open(server.dataDir);
    try {
      await new CacheCollector(store, new DockerRuntime({ instance }), 0).collect();
    } finally {
      await store.close();
    }
    expect(imageExists(entry?.imageId ?? '')).toBe(false);

    // The next task says why it runs the setup again, though another process runs it: a
    // `berth run` on the server's data directory (its own orchestrator; the reset is kept in the
    // store, not in the memory of the server that did it).
    const runFile = join(dir, 'cached-run.yaml');
    writeFileSync(runFile, yaml('echo another setup'));
    const next = await runBerth(
      ['run', '--env-file', runFile, '--command', 'true', '--json', '--data-dir', server.dataDir],
      { BERTH_INSTANCE: instance, TOKEN: 'second', BERTH_URL: undefined },
    );
    expect(next.code, next.stderr).toBe(0);
    const nextId = (JSON.parse(next.stdout) as { task: { id: string } }).task.id;
    const logs = await runBerth(['task', 'logs', nextId, ...auth]);
    expect(logs.stdout).toMatch(/the cache was reset by hand at 20\S+ \(berth env cache reset\)/);
  }, 240_000);

  it('a setup failure prints the failing output once (issue 20 item 12)', async () => {
    const repo = makeSampleRepository();
    const file = join(dir, 'failing.yaml');
    writeFileSync(
      file,
      `name: failing\nrepository: ${repo.dir}\nimage: ${lifecycleTestImage()}\nsetup: |\n  echo "setup says $((6 * 7))"\n  false\n`,
    );
    expect((await runBerth(['env', 'create', '--file', file, ...auth])).code).toBe(0);
    const run = await runBerth([
      'exec',
      '--env',
      'failing',
      '--command',
      'true',
      '--wait',
      ...auth,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('setup script failed at line 2: `false` exited with code 1');
    expect(run.stderr.split('setup says 42').length - 1, run.stderr).toBe(1);
  }, 120_000);
});
