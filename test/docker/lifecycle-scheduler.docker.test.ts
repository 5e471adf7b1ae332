import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { newId } from '../../src/domain/ids.js';
import type { CacheKeyParts } from '../../src/domain/cache/cache-key.js';
import type { AttemptPhase } from '../../src/domain/task/attempt-phase.js';
import { CacheCollector } from '../../src/lifecycle/cache-collector.js';
import { leaseOwnerId, type Scheduler } from '../../src/lifecycle/scheduler.js';
import { WarmPool, warmNamePrefix, warmOwnerOf } from '../../src/lifecycle/warm-pool.js';
import {
  addEnvironment,
  closeTaskQueueWorld,
  commandScheduler,
  openTaskQueueWorld,
  submitCommand,
  type TaskQueueWorld,
} from './task-queue-support.js';

/** The queue on a real engine and a real SQLite file: cancel, recovery after a crash, image GC. */

const instance = `lcsched-${process.pid}`;
const runtime = new DockerRuntime({ instance });
let world: TaskQueueWorld;

/** The test queue (leases of 5 s), its agent phase running each task's command. */
function scheduler(): Scheduler {
  return commandScheduler(world, runtime, { leaseMs: 5_000 });
}

/** The key parts of a hand-made cache entry of the test environment (their values do not matter). */
function cacheParts(): CacheKeyParts {
  return {
    version: 1,
    baseImage: 'x',
    repository: { url: world.repo.dir, defaultBranch: 'main' },
    versions: {},
    setup: null,
    maintenance: null,
    env: {},
    secrets: {},
  };
}

/**
 * What an orchestrator `owner` that died leaves behind: the task's attempt `attemptId` claimed a
 * minute ago (its lease long run out) and in setup. Returns the claim's time.
 */
async function leaveInSetup(owner: string, taskId: string, attemptId: string): Promise<string> {
  const past = new Date(Date.now() - 60_000).toISOString();
  await world.store.claimNextAttempt({ owner, now: past, leaseMs: 1_000, taskIds: [taskId] });
  await world.store.updateAttempt(attemptId, { phase: 'setup' }, { leaseOwner: owner });
  return past;
}

beforeAll(async () => {
  world = await openTaskQueueWorld('sched');
});

afterAll(async () => {
  await closeTaskQueueWorld(world, instance);
});

describe('the task queue on a real engine', () => {
  it('starts cached attempts on sandboxes started ahead of time, and leaves none behind', async () => {
    const owner = leaseOwnerId();
    const warmPool = new WarmPool(runtime, owner);
    const queue = commandScheduler(world, runtime, { owner, warmPool, concurrency: 1 });
    const warm = await addEnvironment(world.store, {
      name: 'warm',
      repository: world.repo.dir,
      setup: 'touch /root/set-up',
    });
    await queue.start();
    const used: boolean[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const { task, attempts } = await submitCommand(queue, warm, 'cat README.md');
        expect((await queue.waitForTask(task.id)).status).toBe('succeeded');
        const events = await world.store.listAttemptEvents(attempts[0]?.id ?? '');
        used.push(events.some((e) => e.type === 'log' && e.text.includes('started ahead of time')));
        // After a cached start the pool starts the next sandbox in the background: wait for it
        // (however long the engine takes on a loaded machine), then a little for nothing else.
        if (i === 1) {
          await expect.poll(() => warmPool.readyTotal, { timeout: 60_000, interval: 100 }).toBe(1);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    } finally {
      await queue.stop();
    }
    // The first built the cache, the second resumed normally and filled the pool, the third used it.
    expect(used).toEqual([false, false, true]);
    expect((await runtime.list({})).filter((s) => warmOwnerOf(s.name) === owner)).toEqual([]);
  });

  it('removes warm sandboxes of an orchestrator that holds no lease', async () => {
    const left = await runtime.create({
      image: world.image,
      labels: {},
      namePrefix: warmNamePrefix('orch-dead-1234'),
      resources: { cpus: 1, memoryMb: 128, pids: 64 },
    });
    await scheduler().recover();
    expect((await runtime.list({})).map((s) => s.id)).not.toContain(left.id);
  });

  it('cancels a running attempt, stops its command and removes its sandbox and network', async () => {
    const queue = scheduler();
    await queue.start();
    try {
      const { task, attempts } = await submitCommand(queue, world.environmentId, 'sleep 300');
      const attemptId = attempts[0]?.id ?? '';
      const phases: AttemptPhase[] = [];
      const inAgent = new Promise<void>((resolve) => {
        queue.subscribe(attemptId, (event) => {
          if (event.type !== 'phase') return;
          phases.push(event.phase);
          if (event.phase === 'agent') resolve();
        });
      });
      await inAgent;
      const started = Date.now();
      await queue.cancel(task.id);
      const done = await queue.waitForTask(task.id);
      console.log(`cancel took ${Date.now() - started} ms`);
      expect(done.status).toBe('cancelled');
      const attempt = await world.store.getAttempt(attemptId);
      expect(attempt?.phase).toBe('cancelled');
      expect(attempt?.error?.message).toBe('the attempt was cancelled during agent');
      expect(phases.at(-1)).toBe('cancelled');
      expect(await runtime.list({ 'berth.attempt': attemptId })).toEqual([]);
      expect(await runtime.listNetworks({ 'berth.attempt': attemptId })).toEqual([]);
    } finally {
      await queue.stop({ cancelRunning: true });
    }
  });

  it("cancels an attempt waiting for another attempt's cache build within 5 s; the build goes on", async () => {
    const queue = scheduler();
    const slow = await addEnvironment(world.store, {
      name: 'slow-setup',
      repository: world.repo.dir,
      setup: 'echo building; sleep 12',
    });
    await queue.start();
    try {
      const a = await submitCommand(queue, slow, 'echo from-a');
      const aPhases: AttemptPhase[] = [];
      const aInSetup = new Promise<void>((resolve) => {
        queue.subscribe(a.attempts[0]?.id ?? '', (event) => {
          if (event.type !== 'phase') return;
          aPhases.push(event.phase);
          if (event.phase === 'setup') resolve();
        });
      });
      await aInSetup;
      const b = await submitCommand(queue, slow, 'echo from-b');
      const bId = b.attempts[0]?.id ?? '';
      // B is claimed, misses the cache and waits in memory for A's build.
      const deadline = Date.now() + 30_000;
      while (
        !(await world.store.listAttemptEvents(bId)).some(
          (e) => e.type === 'cache' && e.result === 'miss',
        )
      ) {
        if (Date.now() > deadline) throw new Error('B never looked for the cache');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(aPhases.at(-1)).toBe('setup');
      const started = Date.now();
      await queue.cancel(b.task.id);
      const cancelled = await queue.waitForTask(b.task.id, AbortSignal.timeout(30_000));
      const took = Date.now() - started;
      console.log(`cancel of a waiting attempt took ${took} ms`);
      expect(cancelled.status).toBe('cancelled');
      expect(took).toBeLessThan(5_000);
      expect((await world.store.getAttempt(bId))?.error?.message).toBe(
        'the attempt was cancelled during creating',
      );
      // A was still building when B was cancelled, and ends on its own.
      expect(aPhases).not.toContain('agent');
      const done = await queue.waitForTask(a.task.id, AbortSignal.timeout(120_000));
      expect(done.status).toBe('succeeded');
      expect((await world.store.getAttempt(a.attempts[0]?.id ?? ''))?.cacheHit).toBe(false);
    } finally {
      await queue.stop({ cancelRunning: true });
    }
  });

  it('a cancel asked on another orchestrator on the same store stops the attempt within 5 s', async () => {
    const runs = scheduler();
    const asks = scheduler(); // never started: it only answers the cancel
    await runs.start();
    try {
      const { task, attempts } = await submitCommand(runs, world.environmentId, 'sleep 300');
      const attemptId = attempts[0]?.id ?? '';
      const inAgent = new Promise<void>((resolve) => {
        runs.subscribe(attemptId, (event) => {
          if (event.type === 'phase' && event.phase === 'agent') resolve();
        });
      });
      await inAgent;
      const started = Date.now();
      await asks.cancel(task.id);
      const done = await runs.waitForTask(task.id, AbortSignal.timeout(30_000));
      const took = Date.now() - started;
      console.log(`cancel from another orchestrator took ${took} ms`);
      expect(done.status).toBe('cancelled');
      expect(took).toBeLessThan(5_000);
      expect((await world.store.getAttempt(attemptId))?.error?.message).toBe(
        'the attempt was cancelled during agent',
      );
      expect(await runtime.list({ 'berth.attempt': attemptId })).toEqual([]);
    } finally {
      await runs.stop({ cancelRunning: true });
    }
  });

  it('after an orchestrator died: starts an attempt over that had not reached the agent, fails one that had, removes what both left', async () => {
    const queue = scheduler();
    const { task, attempts } = await submitCommand(queue, world.environmentId, 'cat README.md', 2);
    const [inSetup, inAgent] = attempts.map((a) => a.id);
    if (inSetup === undefined || inAgent === undefined) throw new Error('two attempts expected');
    // A previous orchestrator claimed both, got one to setup and one to the agent, and died.
    const past = new Date(Date.now() - 60_000).toISOString();
    for (const [id, phase] of [
      [inSetup, 'setup'],
      [inAgent, 'agent'],
    ] as const) {
      expect(
        (
          await world.store.claimNextAttempt({
            owner: 'dead-orchestrator',
            now: past,
            leaseMs: 1_000,
          })
        )?.id,
      ).toBe(id);
      await world.store.updateAttempt(id, { phase }, { leaseOwner: 'dead-orchestrator' });
      await world.store.appendAttemptEvents([
        { attemptId: id, seq: 1, at: past, type: 'phase', phase: 'creating' },
        { attemptId: id, seq: 2, at: past, type: 'phase', phase },
      ]);
    }
    const left: string[] = [];
    for (const id of [inSetup, inAgent]) {
      const labels = { 'berth.task': task.id, 'berth.attempt': id };
      // The dead run's network has the name the next run of the attempt will want.
      await runtime.createNetwork({
        name: `berth-${id.replace(/_/g, '-')}`,
        internal: false,
        labels,
      });
      const sandbox = await runtime.create({
        image: world.image,
        labels,
        resources: { cpus: 1, memoryMb: 128, pids: 64 },
      });
      left.push(sandbox.id);
    }

    expect(await queue.recover()).toBe(2);
    expect(await queue.recover()).toBe(0);
    const failed = await world.store.getAttempt(inAgent);
    expect(failed?.phase).toBe('failed');
    expect(failed?.error?.message).toBe(
      'taken over during agent: its orchestrator stopped renewing the lease (killed, restarted or not answering)',
    );
    expect((await world.store.listAttemptEvents(inAgent)).map((e) => e.type)).toEqual([
      'phase',
      'phase',
      'error',
      'phase',
    ]);
    const requeued = await world.store.getAttempt(inSetup);
    expect(requeued).toMatchObject({ phase: 'queued', leaseOwner: null, startedAt: null });
    const restartEvent = (await world.store.listAttemptEvents(inSetup)).at(-2);
    expect(restartEvent).toMatchObject({
      seq: 3,
      type: 'warning',
      message:
        'taken over during setup: its orchestrator stopped renewing the lease (killed, restarted or not answering); the attempt starts over',
    });
    for (const id of [inSetup, inAgent]) {
      expect((await runtime.list({ 'berth.attempt': id })).map((s) => s.id)).toEqual([]);
      expect(await runtime.listNetworks({ 'berth.attempt': id })).toEqual([]);
    }
    const remaining = (await runtime.list({})).map((s) => s.id);
    expect(left.filter((id) => remaining.includes(id))).toEqual([]);

    // The attempt that started over runs to its end; its log goes on from the earlier events.
    await queue.start();
    try {
      const done = await queue.waitForTask(task.id, AbortSignal.timeout(60_000));
      expect(done.status).toBe('failed');
      const rerun = await world.store.getAttempt(inSetup);
      expect(rerun?.phase).toBe('succeeded');
      expect(rerun?.result?.commands[0]?.output).toContain('# sample');
      const seqs = (await world.store.listAttemptEvents(inSetup)).map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      expect(seqs.length).toBeGreaterThan(4);
    } finally {
      await queue.stop({ cancelRunning: true });
    }
  });

  it('a berth run (claiming its own tasks only) fails what another run left instead of queueing it', async () => {
    const { task, attempts } = await submitCommand(scheduler(), world.environmentId, 'true');
    const id = attempts[0]?.id ?? '';
    await leaveInSetup('dead-run', task.id, id);
    const run = commandScheduler(world, runtime, {
      concurrency: 1,
      onlyTasks: new Set(['task_of_this_run']),
    });
    expect(await run.recover()).toBe(1);
    const attempt = await world.store.getAttempt(id);
    expect(attempt?.phase).toBe('failed');
    expect(attempt?.error?.message).toBe(
      'taken over during setup: its orchestrator stopped renewing the lease (killed, restarted or not answering)',
    );
  });

  it('fails an attempt that already started over twice when its orchestrator dies again', async () => {
    const queue = scheduler();
    const { task, attempts } = await submitCommand(queue, world.environmentId, 'true');
    const id = attempts[0]?.id ?? '';
    const past = await leaveInSetup('dead-orchestrator', task.id, id);
    await world.store.appendAttemptEvents(
      [1, 2].map((seq) => ({
        attemptId: id,
        seq,
        at: past,
        type: 'warning' as const,
        message:
          'taken over during setup: its orchestrator stopped renewing the lease (killed, restarted or not answering); the attempt starts over',
        details: { reason: 'orchestrator_restart', phase: 'setup' },
      })),
    );
    expect(await queue.recover()).toBe(1);
    const attempt = await world.store.getAttempt(id);
    expect(attempt?.phase).toBe('failed');
    expect(attempt?.error?.message).toBe(
      'taken over during setup: its orchestrator stopped renewing the lease (killed, restarted or not answering) (the attempt had started over 2 time(s) already)',
    );
  });

  it('collects a cache image that was committed but never recorded, and keeps a recorded one', async () => {
    const sandbox = await runtime.create({
      image: world.image,
      labels: {},
      resources: { cpus: 1, memoryMb: 128, pids: 64 },
    });
    try {
      const orphan = await runtime.commit(sandbox.id, {
        repository: 'berth-cache',
        tag: `orphan-${process.pid}`,
        labels: { 'berth.kind': 'cache' },
      });
      const kept = await runtime.commit(sandbox.id, {
        repository: 'berth-cache',
        tag: `kept-${process.pid}`,
        labels: { 'berth.kind': 'cache', 'berth.marker': 'kept' },
      });
      const now = new Date();
      await world.store.publishCacheEntry({
        id: newId('cacheEntry'),
        environmentId: world.environmentId,
        key: 'k',
        parts: cacheParts(),
        image: `berth-cache:kept-${process.pid}`,
        imageId: kept.id,
        sizeBytes: kept.sizeBytes,
        commit: world.repo.mainCommit,
        exportNames: [],
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + 3600_000).toISOString(),
      });
      const result = await new CacheCollector(world.store, runtime, 0).collect();
      expect(result.images).toBeGreaterThanOrEqual(1);
      expect(await runtime.imageExists(orphan.id)).toBe(false);
      expect(await runtime.imageExists(kept.id)).toBe(true);
    } finally {
      await runtime.remove(sandbox.id);
    }
  });

  it('removes expired cache entries with their images, and expired snapshots, keeping live ones', async () => {
    const sandbox = await runtime.create({
      image: world.image,
      labels: {},
      resources: { cpus: 1, memoryMb: 128, pids: 64 },
    });
    const created = new Date();
    const hour = 3600_000;
    try {
      const entryImage = async (name: string, expiresInMs: number) => {
        const image = await runtime.commit(sandbox.id, {
          repository: 'berth-cache',
          tag: `${name}-${process.pid}`,
          labels: { 'berth.kind': 'cache' },
        });
        await world.store.publishCacheEntry({
          id: newId('cacheEntry'),
          environmentId: world.environmentId,
          key: `${name}-key`,
          parts: cacheParts(),
          image: `berth-cache:${name}-${process.pid}`,
          imageId: image.id,
          sizeBytes: image.sizeBytes,
          commit: world.repo.mainCommit,
          exportNames: [],
          createdAt: created.toISOString(),
          expiresAt: new Date(created.getTime() + expiresInMs).toISOString(),
        });
        return image.id;
      };
      const snapshot = async (name: string, expiresInMs: number) =>
        (
          await runtime.commit(sandbox.id, {
            repository: 'berth-snapshot',
            tag: `${name}-${process.pid}`,
            labels: {
              'berth.kind': 'snapshot',
              'berth.expires-at': new Date(created.getTime() + expiresInMs).toISOString(),
            },
          })
        ).id;
      const shortEntry = await entryImage('short-lived', hour);
      const longEntry = await entryImage('long-lived', 12 * hour);
      const shortSnapshot = await snapshot('short-snap', hour);
      const longSnapshot = await snapshot('long-snap', 7 * 24 * hour);

      // Two hours later (an injected clock): the short-lived ones are past their time.
      const later = () => new Date(created.getTime() + 2 * hour);
      const result = await new CacheCollector(world.store, runtime, 10 * 60_000, later).collect();
      expect(result.cacheEntries).toBeGreaterThanOrEqual(1);
      expect(result.snapshots).toBeGreaterThanOrEqual(1);
      expect(await runtime.imageExists(shortEntry)).toBe(false);
      expect(await runtime.imageExists(shortSnapshot)).toBe(false);
      expect(await runtime.imageExists(longEntry)).toBe(true);
      expect(await runtime.imageExists(longSnapshot)).toBe(true);
      const keys = (await world.store.listCacheEntries(world.environmentId)).map((e) => e.key);
      expect(keys).toContain('long-lived-key');
      expect(keys).not.toContain('short-lived-key');
      for (const id of [longEntry, longSnapshot]) await runtime.removeImage(id);
    } finally {
      await runtime.remove(sandbox.id);
    }
  });
});
