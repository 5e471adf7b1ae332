import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { AttemptRecorder } from '../../src/lifecycle/attempt-recorder.js';

/**
 * Issue 20 item 13: an orchestrator that stopped answering (frozen past its lease) and comes back
 * writes nothing more to the log of an attempt another orchestrator took over. Real SQLite.
 */

const T0 = '2026-01-01T00:00:00.000Z';
const LATER = '2026-01-01T00:05:00.000Z';
let dir: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-recorder-'));
  store = SqliteStore.open(dir);
  await store.migrate();
  await store.createTask(
    {
      id: 'task_t',
      environmentId: 'env_1',
      prompt: '',
      command: 'sleep 300',
      ref: {},
      repository: null,
      attemptCount: 1,
      status: 'queued',
      createdAt: T0,
      updatedAt: T0,
    },
    [
      {
        id: 'att_t',
        taskId: 'task_t',
        index: 0,
        phase: 'queued',
        cacheHit: null,
        error: null,
        result: null,
        createdAt: T0,
        startedAt: null,
        finishedAt: null,
      },
    ],
  );
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('an attempt taken over from an orchestrator that stopped answering', () => {
  it('the old orchestrator writes nothing more to its log', async () => {
    const claimed = await store.claimNextAttempt({ owner: 'orch-old', now: T0, leaseMs: 30_000 });
    expect(claimed?.id).toBe('att_t');
    await store.updateAttempt('att_t', { phase: 'agent' }, { leaseOwner: 'orch-old' });
    const old = new AttemptRecorder(store, 'att_t', 'orch-old', new Set());
    old.emit({ type: 'log', stream: 'stdout', text: 'working\n' });
    await old.flush();

    // The old one froze; its lease ran out and another orchestrator took the attempt over.
    expect(await store.takeOverExpiredAttempt('att_t', 'agent', 'orch-new', LATER, 30_000)).toBe(
      true,
    );
    await store.appendAttemptEvents([
      {
        attemptId: 'att_t',
        seq: 2,
        at: LATER,
        type: 'error',
        code: 'task_failed',
        message: 'taken over during agent',
        details: {},
      },
    ]);

    // It wakes up and goes on: none of it reaches the log.
    old.emit({ type: 'log', stream: 'stdout', text: 'still working\n' });
    old.emit({ type: 'phase', phase: 'results' });
    await old.flush();
    expect(old.takenOverElsewhere).toBe(true);
    const events = await store.listAttemptEvents('att_t');
    expect(events.map((e) => e.seq)).toEqual([1, 2]);
    expect(events.map((e) => e.type)).toEqual(['log', 'error']);
    expect((await store.getAttempt('att_t'))?.phase).toBe('agent');
  });

  it('one taken over before the new owner wrote anything: the lease says so', async () => {
    await store.claimNextAttempt({ owner: 'orch-old', now: T0, leaseMs: 30_000 });
    const old = new AttemptRecorder(store, 'att_t', 'orch-old', new Set());
    expect(await store.takeOverExpiredAttempt('att_t', 'creating', 'orch-new', LATER, 30_000)).toBe(
      true,
    );
    old.emit({ type: 'log', stream: 'stdout', text: 'late\n' });
    await old.flush();
    expect(await store.listAttemptEvents('att_t')).toEqual([]);
  });
});

describe("a takeover between the old orchestrator's check and its write", () => {
  it('the store refuses the write: the check is the write itself, not a read before it', async () => {
    await store.claimNextAttempt({ owner: 'orch-old', now: T0, leaseMs: 30_000 });
    // The real SQLite store, with the takeover landing just as the old orchestrator's write
    // starts: after any read it made first, before its rows are inserted.
    let takeOverOnWrite = false;
    const racing = new Proxy(store, {
      get(target, name, receiver) {
        const value: unknown = Reflect.get(target, name, receiver);
        if (name !== 'appendAttemptEvents' || typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          if (takeOverOnWrite) {
            takeOverOnWrite = false;
            expect(
              await target.takeOverExpiredAttempt('att_t', 'creating', 'orch-new', LATER, 30_000),
            ).toBe(true);
          }
          return Reflect.apply(value, target, args) as unknown;
        };
      },
    });
    const old = new AttemptRecorder(racing, 'att_t', 'orch-old', new Set());
    old.emit({ type: 'log', stream: 'stdout', text: 'before\n' });
    await old.flush();
    takeOverOnWrite = true;
    old.emit({ type: 'log', stream: 'stdout', text: 'after the takeover\n' });
    await old.flush();
    expect(old.takenOverElsewhere).toBe(true);
    const events = await store.listAttemptEvents('att_t');
    expect(events.map((e) => (e.type === 'log' ? e.text : e.type))).toEqual(['before\n']);
    expect((await store.getAttempt('att_t'))?.leaseOwner).toBe('orch-new');
  });
});

describe('a write the store failed', () => {
  it('is written with the next one, in order (the store takes only the event after the log end)', async () => {
    await store.claimNextAttempt({ owner: 'orch-a', now: T0, leaseMs: 30_000 });
    let failNext = true;
    const flaky = new Proxy(store, {
      get(target, name, receiver) {
        const value: unknown = Reflect.get(target, name, receiver);
        if (name !== 'appendAttemptEvents' || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (failNext) {
            failNext = false;
            return Promise.reject(new Error('database is locked'));
          }
          return Reflect.apply(value, target, args) as unknown;
        };
      },
    });
    const recorder = new AttemptRecorder(flaky, 'att_t', 'orch-a', new Set());
    recorder.emit({ type: 'log', stream: 'stdout', text: 'one\n' });
    await expect(recorder.flush()).rejects.toThrow('database is locked');
    recorder.emit({ type: 'log', stream: 'stdout', text: 'two\n' });
    await recorder.flush().catch(() => undefined);
    expect(recorder.takenOverElsewhere).toBe(false);
    const events = await store.listAttemptEvents('att_t');
    expect(events.map((e) => (e.type === 'log' ? e.text : e.type))).toEqual(['one\n', 'two\n']);
  });
});
