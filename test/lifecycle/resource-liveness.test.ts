import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { resourceLiveness } from '../../src/lifecycle/resource-liveness.js';
import { warmNamePrefix } from '../../src/lifecycle/warm-pool.js';

let dir: string;
let store: SqliteStore;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-liveness-'));
  store = SqliteStore.open(dir);
  await store.migrate();
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('reaper liveness of warm sandboxes', () => {
  it('keeps this orchestrator’s, and another’s only while that one holds a lease', async () => {
    const now = new Date().toISOString();
    const live = resourceLiveness(store, { owner: 'orch-me' });
    const warm = (owner: string) => `berth-${warmNamePrefix(owner)}-0123456789ab`;
    expect(await live({ 'berth.kind': 'sandbox' }, warm('orch-me'))).toBe(true);
    expect(await live({ 'berth.kind': 'sandbox' }, warm('orch-other'))).toBe(false);
    await store.createTask(
      {
        id: 'task_l',
        environmentId: 'env_1',
        prompt: '',
        command: 'true',
        ref: {},
        repository: null,
        attemptCount: 1,
        status: 'queued',
        createdAt: now,
        updatedAt: now,
      },
      [
        {
          id: 'att_l',
          taskId: 'task_l',
          index: 0,
          phase: 'queued',
          cacheHit: null,
          error: null,
          result: null,
          createdAt: now,
          startedAt: null,
          finishedAt: null,
        },
      ],
    );
    await store.claimNextAttempt({ owner: 'orch-other', now, leaseMs: 60_000 });
    expect(await live({ 'berth.kind': 'sandbox' }, warm('orch-other'))).toBe(true);
  });
});

describe('reaper liveness of snapshots', () => {
  it('keeps a snapshot within its lifetime whatever other labels it carries, and only then', async () => {
    const live = resourceLiveness(store, { owner: 'orch-me' });
    const later = new Date(Date.now() + 60_000).toISOString();
    const earlier = new Date(Date.now() - 60_000).toISOString();
    // A snapshot an older Berth committed from a warm sandbox of an orchestrator now gone.
    const inherited = { 'berth.warm-owner': 'orch-gone', 'berth.cache': 'k' };
    expect(await live({ 'berth.kind': 'snapshot', 'berth.expires-at': later, ...inherited })).toBe(
      true,
    );
    expect(
      await live({ 'berth.kind': 'snapshot', 'berth.expires-at': earlier, ...inherited }),
    ).toBe(false);
  });
});
