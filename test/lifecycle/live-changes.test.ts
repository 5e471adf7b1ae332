import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import {
  LIVE_EVENT_MAX_BYTES,
  LIVE_FILES_BUDGET_BYTES,
  LIVE_FILES_MAX,
  LIVE_PATH_MAX,
  LiveChanges,
} from '../../src/lifecycle/live-changes.js';
import type { ExecOptions, ExecResult, SandboxRuntime } from '../../src/ports/sandbox-runtime.js';

/**
 * The live list of changed files (review 4, F2 and F3): its events stay small and stop after a
 * budget per attempt, a lock left by a listing that timed out does not stop later listings, and a
 * listing larger than the output bound still gives a (cut) list with the count. The listing
 * script runs for real, with bash and git on this machine, in a temporary repository: the
 * "runtime" below only runs the argv it is given there (the state directory moved into the
 * temporary folder) and bounds its output the way the sandbox runtime does. (The whole path in a
 * sandbox runs in the Docker lifecycle tests.)
 */

const run = promisify(execFile);
let root = '';
let repo = '';
let state = '';
let base = '';

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-live-'));
  repo = join(root, 'repo');
  state = join(root, 'state');
  await mkdir(repo);
  await writeFile(join(repo, 'a.txt'), 'a\n');
  const git = (...args: string[]) =>
    run('git', ['-c', 'user.email=t@t', '-c', 'user.name=t', ...args], { cwd: repo });
  await git('init', '-q');
  await git('add', '-A');
  await git('commit', '-qm', 'init');
  base = (await git('rev-parse', 'HEAD')).stdout.trim();
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Runs the listing's argv on this machine, its output bounded like the sandbox runtime's. */
function hostRuntime(): SandboxRuntime {
  const exec = (_id: string, options: ExecOptions): Promise<ExecResult> =>
    new Promise((resolve) => {
      const argv = [...(options.argv ?? [])];
      // The last argument is the sandbox's state directory: here a folder of the test's own.
      argv[argv.length - 1] = state;
      const child = spawn(argv[0]!, argv.slice(1), { cwd: repo });
      const max = options.maxOutputBytes ?? Infinity;
      const out: Buffer[] = [];
      let kept = 0;
      let omitted = 0;
      child.stdout.on('data', (chunk: Buffer) => {
        const room = Math.max(0, max - kept);
        out.push(chunk.subarray(0, room));
        kept += Math.min(room, chunk.length);
        omitted += Math.max(0, chunk.length - room);
      });
      child.stderr.resume();
      child.on('close', (code) => {
        const stdout = Buffer.concat(out).toString('utf8');
        resolve({
          exitCode: code ?? 1,
          output: stdout,
          stdout,
          stderr: '',
          omittedBytes: omitted,
          timedOut: false,
          durationMs: 0,
        });
      });
    });
  return { exec } as unknown as SandboxRuntime;
}

function live(events: AttemptEventBody[]): LiveChanges {
  return new LiveChanges({
    runtime: hostRuntime(),
    sandboxId: 'box',
    workdir: '/workspace',
    baseCommit: base,
    signal: new AbortController().signal,
    mask: (text) => text,
    emit: (event) => events.push(event),
    active: () => true,
    intervalMs: 1e9,
  });
}

async function listOnce(changes: LiveChanges): Promise<void> {
  changes.refresh();
  await changes.settled();
}

const filesEvents = (events: AttemptEventBody[]) =>
  events.filter((e): e is Extract<AttemptEventBody, { type: 'files' }> => e.type === 'files');

describe('LiveChanges', () => {
  it('keeps each files event small and stops after a byte budget per attempt, with one notice', async () => {
    // 200 files with 500-character paths, one of them growing between listings: every listing
    // differs from the last, so each one sends an event.
    const dir = join(repo, 'd'.repeat(240));
    await mkdir(dir);
    for (let i = 0; i < 200; i++) await writeFile(join(dir, String(i).padStart(250, '0')), 'x\n');
    const events: AttemptEventBody[] = [];
    const changes = live(events);
    let grow = '';
    const listings = Math.ceil(LIVE_FILES_BUDGET_BYTES / (LIVE_EVENT_MAX_BYTES / 2)) + 10;
    for (let i = 0; i < listings; i++) {
      grow += 'y\n';
      await writeFile(join(repo, 'aaa-grow.txt'), grow);
      await listOnce(changes);
    }
    const files = filesEvents(events);
    expect(files.length).toBeGreaterThan(1);
    for (const event of files) {
      expect(Buffer.byteLength(JSON.stringify(event))).toBeLessThanOrEqual(LIVE_EVENT_MAX_BYTES);
      expect(event.files.length).toBeLessThanOrEqual(LIVE_FILES_MAX);
      for (const file of event.files) expect(file.path.length).toBeLessThanOrEqual(LIVE_PATH_MAX);
      expect(event.total).toBe(201);
    }
    const sent = files.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e)), 0);
    expect(sent).toBeLessThanOrEqual(LIVE_FILES_BUDGET_BYTES);
    expect(files.length).toBeLessThan(listings);
    const notices = events.filter((e) => e.type === 'warning');
    expect(notices).toHaveLength(1);
    expect(events.at(-1)?.type).toBe('warning');
  }, 120_000);

  it('sends nothing when the list has not changed', async () => {
    await writeFile(join(repo, 'b.txt'), 'b\n');
    const events: AttemptEventBody[] = [];
    const changes = live(events);
    await listOnce(changes);
    await listOnce(changes);
    expect(filesEvents(events)).toHaveLength(1);
    expect(filesEvents(events)[0]?.files.map((f) => f.path)).toEqual(['b.txt']);
  });

  it('lists again after a listing left its index lock behind (it timed out)', async () => {
    await writeFile(join(repo, 'b.txt'), 'b\n');
    await mkdir(state);
    await writeFile(join(state, 'live.index.lock'), '');
    const events: AttemptEventBody[] = [];
    await listOnce(live(events));
    expect(filesEvents(events).map((e) => e.files.map((f) => f.path))).toEqual([['b.txt']]);
  });

  it('sends a cut list with the count when the listing is larger than its output bound', async () => {
    const dir = join(repo, 'many');
    await mkdir(dir);
    const count = 2500;
    for (let i = 0; i < count; i++) await writeFile(join(dir, `${'n'.repeat(120)}-${i}`), '');
    const events: AttemptEventBody[] = [];
    await listOnce(live(events));
    const files = filesEvents(events);
    expect(files).toHaveLength(1);
    expect(files[0]?.total).toBe(count);
    expect(files[0]?.files.length).toBeGreaterThan(0);
    expect(files[0]?.files.length).toBeLessThanOrEqual(LIVE_FILES_MAX);
    for (const file of files[0]?.files ?? []) expect(file.path).toMatch(/^many\/n{120}-\d+$/);
  }, 60_000);
});
