import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/** Pinned language versions through the server: refused when they cannot be had, installed when they can. */

let server: ServeHandle;
let auth: string[];
let dir: string;
let repoDir: string;

function envFile(name: string, versions: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nrepository: ${repoDir}\nimage: minimal\nversions: ${versions}\n`,
  );
  return file;
}

beforeAll(async () => {
  lifecycleTestImage();
  repoDir = makeSampleRepository().dir;
  server = await startServe(['--allow-local-repos']);
  auth = ['--url', server.url, '--token', server.adminToken];
  dir = tempDir('versions');
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

describe('language versions (docker)', () => {
  it.each([
    ['{ node: "99" }', /node 99 cannot be had/],
    ['{ python: "3.12" }', /python 3\.12 cannot be had/],
  ])('refuses %s naming the language and version', async (versions, message) => {
    const r = await runBerth([
      'env',
      'create',
      '--file',
      envFile(`v${Math.random().toString(36).slice(2, 8)}`, versions),
      ...auth,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('installs node 22 during image preparation and runs it in the agent phase', async () => {
    expect(
      (await runBerth(['env', 'create', '--file', envFile('node22', '{ node: "22" }'), ...auth]))
        .code,
    ).toBe(0);
    const r = await runBerth([
      'exec',
      '--env',
      'node22',
      '--command',
      'node --version',
      '--wait',
      '--json',
      ...auth,
    ]);
    const task = JSON.parse(r.stdout) as {
      status: string;
      attempts: Array<{ commands: Array<{ output: string }> }>;
    };
    expect(task.status, r.stderr).toBe('succeeded');
    expect(task.attempts[0]?.commands[0]?.output).toMatch(/^v22\./m);
  });

  it('installs dependencies from the package registry in setup, then reuses them from the cache', async () => {
    const file = join(dir, 'deps.yaml');
    // The registry is the one the image was built with (the host's npm setting), reached in setup.
    writeFileSync(
      file,
      `name: deps\nrepository: ${repoDir}\nimage: minimal\nversions: { node: "22" }\nsetup: |\n  npm init -y >/dev/null\n  npm install --no-audit --no-fund is-number@7.0.0\n`,
    );
    expect((await runBerth(['env', 'create', '--file', file, ...auth])).code).toBe(0);
    const check = `node -e "console.log('is-number', require('is-number')(5))"`;
    const first = await runBerth([
      'exec',
      '--env',
      'deps',
      '--command',
      check,
      '--wait',
      '--json',
      ...auth,
    ]);
    const cold = JSON.parse(first.stdout) as {
      status: string;
      attempts: Array<{ cacheHit: boolean; commands: Array<{ output: string }> }>;
    };
    expect(cold.status, first.stderr).toBe('succeeded');
    expect(cold.attempts[0]?.commands[0]?.output).toContain('is-number true');
    const second = await runBerth([
      'exec',
      '--env',
      'deps',
      '--command',
      check,
      '--wait',
      '--json',
      ...auth,
    ]);
    const warm = JSON.parse(second.stdout) as typeof cold;
    expect(warm.attempts[0]?.cacheHit).toBe(true);
    expect(warm.attempts[0]?.commands[0]?.output).toContain('is-number true');
  });
});
