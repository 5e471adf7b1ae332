import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Issue 20 item 13: an attempt killed by its memory limit says so (out of memory,
 * `resources.memoryMb`), not only "exit code 137"; through the CLI against `berth serve`.
 */

let server: ServeHandle;
let auth: string[];
let dir: string;
// 300 MB in one string, in a sandbox limited to 64 MB (perl is in every image: the exec agent).
const HOG = `perl -e '$x = "a" x (300 * 1024 * 1024); print length($x)'`;

beforeAll(async () => {
  server = await startServe(['--allow-local-repos']);
  auth = ['--url', server.url, '--token', server.adminToken];
  dir = tempDir('oom');
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

async function env(name: string, setup: string): Promise<void> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nrepository: ${makeSampleRepository().dir}\nimage: ${lifecycleTestImage()}\nsetup: ${JSON.stringify(setup)}\nresources: { memoryMb: 64 }\n`,
  );
  expect((await runBerth(['env', 'create', '--file', file, ...auth])).code).toBe(0);
}

describe('an attempt killed by its memory limit (docker)', () => {
  it('a command says out of memory and names resources.memoryMb', async () => {
    await env('oom-command', 'echo ready');
    const r = await runBerth(['exec', '--env', 'oom-command', '--command', HOG, '--wait', ...auth]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(exit code 137, out of memory: resources.memoryMb)');
    const json = await runBerth([
      'exec',
      '--env',
      'oom-command',
      '--command',
      HOG,
      '--wait',
      '--json',
      ...auth,
    ]);
    const attempt = (JSON.parse(json.stdout) as { attempts: { message: string }[] }).attempts[0];
    expect(attempt?.message).toContain('The command was killed: out of memory');
    expect(attempt?.message).toContain('resources.memoryMb');
  });

  it('a setup script says out of memory and names resources.memoryMb', async () => {
    await env('oom-setup', HOG);
    const r = await runBerth([
      'exec',
      '--env',
      'oom-setup',
      '--command',
      'true',
      '--wait',
      ...auth,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /setup script failed at line 1: .* exited with code 137: out of memory \(the sandbox's memory limit is resources\.memoryMb/,
    );
  });
});
