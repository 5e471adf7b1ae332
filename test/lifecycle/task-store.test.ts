import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/ports/store.js';
import { describeEachStore } from '../store/each-store.js';
import { cacheKeyParts, cacheKey } from '../../src/domain/cache/cache-key.js';
import type { CacheEntry } from '../../src/domain/cache/cache-entry.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import type { Task } from '../../src/domain/task/task.js';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:01:00.000Z';
const T2 = '2026-01-01T00:02:00.000Z';

function task(id: string, attempts: number, createdAt = T0): { task: Task; attempts: Attempt[] } {
  return {
    task: {
      id,
      environmentId: 'env_1',
      prompt: 'fix it',
      command: 'npm test',
      ref: { branch: 'feature' },
      repository: null,
      attemptCount: attempts,
      status: 'queued',
      createdAt,
      updatedAt: createdAt,
    },
    attempts: Array.from({ length: attempts }, (_, index) => ({
      id: `att_${id}_${index}`,
      taskId: id,
      index,
      phase: 'queued' as const,
      cacheHit: null,
      error: null,
      result: null,
      createdAt,
      startedAt: null,
      finishedAt: null,
    })),
  };
}

/** The task tables' behaviour, run against each store adapter (a fresh, migrated store each test). */
function describeTaskStore(
  adapter: string,
  open: () => Promise<{ store: Store; cleanup: () => void }>,
): void {
  describe(`task tables: ${adapter}`, () => {
    let store: Store;
    let cleanup: () => void;
    beforeEach(async () => {
      ({ store, cleanup } = await open());
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
      cleanup();
    });
    taskStoreTests(() => store);
  });
}

describeEachStore('task tables', describeTaskStore);

function taskStoreTests(current: () => Store): void {
  describe('tasks and attempts', () => {
    let store: Store;
    beforeEach(() => {
      store = current();
    });
    it('stores a task with its attempts and reads them back', async () => {
      const t = task('task_a', 2);
      await store.createTask(t.task, t.attempts);
      expect(await store.getTask('task_a')).toMatchObject(t.task);
      const attempts = await store.listAttempts('task_a');
      expect(attempts.map((a) => [a.id, a.index, a.phase, a.leaseOwner])).toEqual([
        ['att_task_a_0', 0, 'queued', null],
        ['att_task_a_1', 1, 'queued', null],
      ]);
      await store.updateTaskStatus('task_a', 'running', T1);
      expect((await store.listTasks({ environmentId: 'env_1' }))[0]?.status).toBe('running');
    });

    it('claims queued attempts oldest first, each once, with a lease', async () => {
      const older = task('task_old', 1, T0);
      const newer = task('task_new', 1, T1);
      await store.createTask(newer.task, newer.attempts);
      await store.createTask(older.task, older.attempts);
      expect(
        await store.claimNextAttempt({ owner: 'orch-1', now: T1, leaseMs: 30_000, taskIds: [] }),
      ).toBeUndefined();
      const own = await store.claimNextAttempt({
        owner: 'orch-9',
        now: T1,
        leaseMs: 30_000,
        taskIds: ['task_new'],
      });
      expect(own?.id).toBe('att_task_new_0');
      await store.updateAttempt(own?.id ?? '', { phase: 'queued' });
      const first = await store.claimNextAttempt({ owner: 'orch-1', now: T1, leaseMs: 30_000 });
      expect(first).toMatchObject({
        id: 'att_task_old_0',
        phase: 'creating',
        leaseOwner: 'orch-1',
        leaseExpiresAt: '2026-01-01T00:01:30.000Z',
      });
      const claims = await Promise.all([
        store.claimNextAttempt({ owner: 'orch-1', now: T1, leaseMs: 30_000 }),
        store.claimNextAttempt({ owner: 'orch-2', now: T1, leaseMs: 30_000 }),
      ]);
      expect(claims.filter((c) => c !== undefined).map((c) => c?.id)).toEqual(['att_task_new_0']);
      expect(
        await store.claimNextAttempt({ owner: 'orch-1', now: T1, leaseMs: 30_000 }),
      ).toBeUndefined();
    });

    it('finds attempts whose lease expired, and a renewed lease keeps one alive', async () => {
      const t = task('task_l', 2);
      await store.createTask(t.task, t.attempts);
      const a = await store.claimNextAttempt({ owner: 'orch-1', now: T0, leaseMs: 30_000 });
      const b = await store.claimNextAttempt({ owner: 'orch-1', now: T0, leaseMs: 30_000 });
      expect(await store.renewAttemptLease(b?.id ?? '', 'orch-1', T1, 90_000)).toBe(true);
      expect(await store.renewAttemptLease(b?.id ?? '', 'someone-else', T1, 90_000)).toBe(false);
      expect((await store.listExpiredAttempts(T1)).map((x) => x.id)).toEqual([a?.id]);
      expect(await store.countLiveLeases('orch-1', T1)).toBe(1);
      expect(await store.countLiveLeases('orch-2', T1)).toBe(0);
    });

    it('records a cancel request for a claimed attempt for its owner to find', async () => {
      const t = task('task_c', 2);
      await store.createTask(t.task, t.attempts);
      const queued = t.attempts[1]?.id ?? '';
      const a = await store.claimNextAttempt({ owner: 'orch-1', now: T0, leaseMs: 30_000 });
      const id = a?.id ?? '';
      expect(await store.listCancelRequests('orch-1')).toEqual([]);
      expect(await store.requestAttemptCancel(queued, T1)).toBe(false);
      expect(await store.requestAttemptCancel(id, T1)).toBe(true);
      expect(await store.listCancelRequests('orch-1')).toEqual([id]);
      expect(await store.listCancelRequests('orch-2')).toEqual([]);
      await store.updateAttempt(id, { phase: 'cancelled' }, { leaseOwner: 'orch-1' });
      expect(await store.listCancelRequests('orch-1')).toEqual([]);
      expect(await store.requestAttemptCancel(id, T1)).toBe(false);
    });

    it('lets exactly one recoverer take over an expired lease, and puts the attempt back in the queue', async () => {
      const t = task('task_r', 1);
      await store.createTask(t.task, t.attempts);
      const a = await store.claimNextAttempt({ owner: 'dead', now: T0, leaseMs: 30_000 });
      await store.updateAttempt(a?.id ?? '', { phase: 'setup' }, { leaseOwner: 'dead' });
      const id = a?.id ?? '';
      // Not expired yet, or not in that phase any more: nothing taken.
      expect(await store.takeOverExpiredAttempt(id, 'setup', 'orch-1', T0, 30_000)).toBe(false);
      expect(await store.takeOverExpiredAttempt(id, 'agent', 'orch-1', T1, 30_000)).toBe(false);
      const takers = await Promise.all(
        ['orch-1', 'orch-2', 'orch-3'].map((owner) =>
          store.takeOverExpiredAttempt(id, 'setup', owner, T1, 30_000),
        ),
      );
      expect(takers.filter(Boolean)).toHaveLength(1);
      const winner = `orch-${takers.indexOf(true) + 1}`;
      expect(await store.getAttempt(id)).toMatchObject({
        phase: 'setup',
        leaseOwner: winner,
        leaseExpiresAt: '2026-01-01T00:01:30.000Z',
      });
      expect(await store.listExpiredAttempts(T1)).toEqual([]);
      expect(await store.requeueAttempt(id, 'dead')).toBe(false);
      expect(await store.requeueAttempt(id, winner)).toBe(true);
      expect(await store.getAttempt(id)).toMatchObject({
        phase: 'queued',
        leaseOwner: null,
        leaseExpiresAt: null,
        startedAt: null,
      });
      expect(
        (await store.claimNextAttempt({ owner: 'orch-4', now: T2, leaseMs: 30_000 }))?.id,
      ).toBe(id);
    });

    it('updates an attempt only under its condition, and a finished one holds no lease', async () => {
      const t = task('task_u', 1);
      await store.createTask(t.task, t.attempts);
      const a = await store.claimNextAttempt({ owner: 'orch-1', now: T0, leaseMs: 30_000 });
      const id = a?.id ?? '';
      expect(await store.updateAttempt(id, { phase: 'setup' }, { leaseOwner: 'orch-2' })).toBe(
        false,
      );
      expect(
        await store.updateAttempt(
          id,
          { phase: 'setup', cacheHit: false },
          { leaseOwner: 'orch-1' },
        ),
      ).toBe(true);
      const result = {
        baseCommit: 'abc',
        diff: 'd',
        files: [],
        message: 'ok',
        commands: [],
        snapshotImage: null,
      };
      expect(
        await store.updateAttempt(
          id,
          { phase: 'succeeded', result, finishedAt: T2 },
          { phases: ['setup'] },
        ),
      ).toBe(true);
      const done = await store.getAttempt(id);
      expect(done).toMatchObject({
        phase: 'succeeded',
        cacheHit: false,
        result,
        finishedAt: T2,
        leaseOwner: null,
        leaseExpiresAt: null,
      });
      expect(await store.updateAttempt(id, { phase: 'cancelled' }, { phases: ['queued'] })).toBe(
        false,
      );
    });

    it('keeps events in order and pages after a sequence number', async () => {
      const t = task('task_e', 1);
      await store.createTask(t.task, t.attempts);
      const attemptId = 'att_task_e_0';
      await store.appendAttemptEvents([
        { attemptId, seq: 1, at: T0, type: 'phase', phase: 'creating' },
        { attemptId, seq: 2, at: T0, type: 'log', stream: 'stdout', text: 'hi\n' },
      ]);
      await store.appendAttemptEvents([
        { attemptId, seq: 3, at: T1, type: 'cache', result: 'miss', reason: 'no cache entry yet' },
      ]);
      expect((await store.listAttemptEvents(attemptId)).map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(await store.listAttemptEvents(attemptId, 2)).toEqual([
        { attemptId, seq: 3, at: T1, type: 'cache', result: 'miss', reason: 'no cache entry yet' },
      ]);
    });
  });

  describe('cache entries', () => {
    let store: Store;
    beforeEach(() => {
      store = current();
    });
    const parts = cacheKeyParts({
      environmentId: 'env_1',
      baseImageDigest: 'sha256:x',
      repository: { url: 'https://git.example/a.git', defaultBranch: 'main' },
      versions: {},
      env: {},
      secrets: {},
    });
    const entry = (
      id: string,
      createdAt: string,
      expiresAt: string,
      key = cacheKey(parts),
    ): CacheEntry => ({
      id,
      environmentId: 'env_1',
      key,
      parts,
      image: `berth-cache:${id}`,
      imageId: `sha256:${id}`,
      sizeBytes: 123_456_789_012,
      commit: 'abc',
      exportNames: ['FOO'],
      createdAt,
      expiresAt,
    });

    it('finds the newest live entry for a key and never an expired one', async () => {
      const key = cacheKey(parts);
      await store.publishCacheEntry(entry('cache_old', T0, T1));
      expect(await store.findLiveCacheEntry('env_1', key, T1)).toBeUndefined();
      await store.publishCacheEntry(entry('cache_new', T1, '2026-01-01T12:01:00.000Z'));
      await store.publishCacheEntry(
        entry('cache_other', T2, '2026-01-01T12:02:00.000Z', 'other-key'),
      );
      expect(await store.findLiveCacheEntry('env_1', key, T2)).toEqual(
        entry('cache_new', T1, '2026-01-01T12:01:00.000Z'),
      );
      expect((await store.latestCacheEntry('env_1'))?.id).toBe('cache_other');
      expect((await store.listCacheEntries()).map((e) => e.id)).toEqual([
        'cache_other',
        'cache_new',
        'cache_old',
      ]);
      await store.deleteCacheEntries(['cache_new', 'cache_other']);
      expect((await store.listCacheEntries('env_1')).map((e) => e.id)).toEqual(['cache_old']);
    });
  });

  describe('cache builds', () => {
    let store: Store;
    beforeEach(() => {
      store = current();
    });
    const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000).toISOString();
    const request = (owner: string, seconds: number, leaseMs = 30_000) => ({
      environmentId: 'env_1',
      key: 'k1',
      owner,
      now: at(seconds),
      leaseMs,
    });

    it('gives a build to one owner until its lease runs out, then lets another take it over', async () => {
      expect(await store.claimCacheBuild(request('orch-a/att_1', 0))).toBe(true);
      expect(await store.getCacheBuild('env_1', 'k1')).toEqual({
        environmentId: 'env_1',
        key: 'k1',
        owner: 'orch-a/att_1',
        claimedAt: at(0),
        expiresAt: at(30),
      });
      expect(await store.claimCacheBuild(request('orch-b/att_2', 10))).toBe(false);
      // Its own claim again is fine (idempotent); another key is another build.
      expect(await store.claimCacheBuild(request('orch-a/att_1', 10))).toBe(true);
      expect(await store.claimCacheBuild({ ...request('orch-b/att_2', 10), key: 'k2' })).toBe(true);
      // Renewed, the lease runs on; not renewed, it expires and another owner takes the build.
      expect(await store.renewCacheBuild(request('orch-a/att_1', 20))).toBe(true);
      expect(await store.renewCacheBuild(request('orch-b/att_2', 20))).toBe(false);
      expect(await store.claimCacheBuild(request('orch-b/att_2', 45))).toBe(false);
      expect(await store.claimCacheBuild(request('orch-b/att_2', 50))).toBe(true);
      expect((await store.getCacheBuild('env_1', 'k1'))?.owner).toBe('orch-b/att_2');
      // The old owner has lost it: it cannot renew or release what is no longer its own.
      expect(await store.renewCacheBuild(request('orch-a/att_1', 51))).toBe(false);
      await store.releaseCacheBuild('env_1', 'k1', 'orch-a/att_1');
      expect((await store.getCacheBuild('env_1', 'k1'))?.owner).toBe('orch-b/att_2');
      await store.releaseCacheBuild('env_1', 'k1', 'orch-b/att_2');
      expect(await store.getCacheBuild('env_1', 'k1')).toBeUndefined();
      expect(await store.claimCacheBuild(request('orch-c/att_3', 52))).toBe(true);
      // Only claims whose lease ran out are dropped by the collector's sweep.
      expect(await store.deleteExpiredCacheBuilds(at(60))).toBe(1);
      expect(await store.getCacheBuild('env_1', 'k2')).toBeUndefined();
      expect(await store.deleteExpiredCacheBuilds(at(60))).toBe(0);
      expect((await store.getCacheBuild('env_1', 'k1'))?.owner).toBe('orch-c/att_3');
    });

    it('lets exactly one of many concurrent claimers win, on a free build and on an expired one', async () => {
      const claims = await Promise.all(
        Array.from({ length: 12 }, (_, i) => store.claimCacheBuild(request(`orch-${i}/att`, 0))),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      const takeovers = await Promise.all(
        Array.from({ length: 12 }, (_, i) => store.claimCacheBuild(request(`late-${i}/att`, 60))),
      );
      expect(takeovers.filter(Boolean)).toHaveLength(1);
      const winner = takeovers.findIndex(Boolean);
      expect((await store.getCacheBuild('env_1', 'k1'))?.owner).toBe(`late-${winner}/att`);
    });
  });
}
