import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * Issue 20 item 12: scripts/setup.sh shows one progress line per step and keeps what the package
 * managers print in a log file it names; a failing step shows its own output once, then why. The
 * script itself installs system packages, so this runs its real helpers (cut out of the file,
 * not copied) around commands that succeed and fail.
 */

const SETUP = resolve(import.meta.dirname, '../../scripts/setup.sh');
const dir = mkdtempSync(join(tmpdir(), 'berth-setup-output-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The script from its first line to the end of `run_logged`, then `body`. */
function withHelpers(body: string): string {
  const text = readFileSync(SETUP, 'utf8');
  const end = text.indexOf('\n}\n', text.indexOf('run_logged() {')) + 3;
  expect(end).toBeGreaterThan(3);
  // Not the `cd` to the repository: the helpers are all that is needed.
  return text.slice(0, end).replace(/^cd .*$/m, '') + body;
}

function run(body: string) {
  const log = join(dir, `setup-${Math.random().toString(16).slice(2)}.log`);
  const result = spawnSync('bash', ['-c', withHelpers(body)], {
    encoding: 'utf8',
    env: { ...process.env, BERTH_SETUP_LOG: log },
  });
  return { ...result, log };
}

describe('scripts/setup.sh output', () => {
  it('is valid bash', () => {
    execFileSync('bash', ['-n', SETUP]);
  });

  it('one line per step; what the commands print goes to the named log', () => {
    const r = run(`
say "installing things"
run_logged "it failed" bash -c 'for i in $(seq 1 50); do echo "noisy line $i"; done; echo "to stderr" >&2'
say "done"
`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain(`details of every step go to ${r.log}`);
    expect(lines[1]).toContain('installing things');
    expect(r.stderr).not.toContain('noisy line');
    const log = readFileSync(r.log, 'utf8');
    expect(log).toContain('noisy line 50');
    expect(log).toContain('to stderr');
  });

  it('a failing step shows its own output once, then the reason, and stops', () => {
    const r = run(`
run_logged "the first step failed" bash -c 'echo earlier step output'
run_logged "the build failed" bash -c 'echo "compiling"; echo "error: $((40 + 2)) problems" >&2; exit 3'
say "never reached"
`);
    expect(r.status).toBe(1);
    expect(r.stderr).not.toContain('never reached');
    expect(r.stderr).not.toContain('earlier step output');
    expect(r.stderr.split('error: 42 problems').length - 1).toBe(1);
    expect(r.stderr).toContain(`(from ${r.log})`);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('setup: the build failed');
  });
});
