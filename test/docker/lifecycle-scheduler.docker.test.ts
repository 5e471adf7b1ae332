import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import { newId } from '../../src/domain/ids.js';
import type { AttemptPhase } from '../../src/domain/task/attempt-phase.js';
import { AttemptRunner } from '../../src/lifecycle/attempt-runner.js';
import { CacheCollector } from '../../src/lifecycle/cache-collector.js';
import { CommandAgent } from '../../src/lifecycle/command-agent.js';
import { NoNetworkEnforcer } from '../../src/lifecycle/network-policy-enforcer.js';
import { leaseOwnerId, Scheduler } from '../../src/lifecycle/scheduler.js';
import { WARM_OWNER_LABEL, WarmPool } from '../../src/lifecycle/warm-pool.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/** The queue on a real engine and a real SQLite file: cancel, recovery after a crash, image GC. */

const instance = `lcsched-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let dir: string;
let store: SqliteStore;
let runtime: DockerRuntime;
let environmentId: string;

function scheduler(command: string): Scheduler {
  const runner = new AttemptRunner({
    runtime,
    cache: store,
    enforcer: new NoNetworkEnforcer(),
    resolveImage: () => image,
    cacheTtlMs: 3600_000,
    snapshotTtlMs: 3600_000,
    allowLocalRepositories: true,
  });
  return new Scheduler({
    store,
    runner,
    runtime,
    openSecrets: () => Promise.resolve({}),
    agentFor: () => new CommandAgent(command),
    concurrency: 2,
    pollMs: 100,
    leaseMs: 5_000,
  });
}

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  dir = mkdtempSync(join(tmpdir(), 'berth-scheduler-'));
  store = SqliteStore.open(dir);
  await store.migrate();
  runtime = new DockerRuntime({ instance });
  environmentId = newId('environment');
  await store.createEnvironment({
    id: environmentId,
    spec: parseEnvironmentSpec({ name: 'sched', repository: repo.dir, image: 'minimal' }),
    createdByTokenId: null,
    secrets: [],
    now: new Date().toISOString(),
  });
});

afterAll(async () => {
  await store.close();
  removeInstanceImages(instance);
  rmSync(dir, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('the task queue on a real engine', () => {
  it('starts cached attempts on sandboxes started ahead of time, and leaves none behind', async () => {
    const owner = leaseOwnerId();
    const warmPool = new WarmPool(runtime, owner);
    const runner = new AttemptRunner({
      runtime,
      cache: store,
      enforcer: new NoNetworkEnforcer(),
      resolveImage: () => image,
      cacheTtlMs: 3600_000,
      snapshotTtlMs: 3600_000,
      allowLocalRepositories: true,
      warmPool,
    });
    const queue = new Scheduler({
      store,
      runner,
      runtime,
      owner,
      warmPool,
      openSecrets: () => Promise.resolve({}),
      agentFor: () => new CommandAgent('cat README.md'),
      concurrency: 1,
      pollMs: 100,
    });
    const warm = await store.createEnvironment({
      id: newId('environment'),
      spec: parseEnvironmentSpec({
        name: 'warm',
        repository: repo.dir,
        image: 'minimal',
        setup: 'touch /root/set-up',
      }),
      createdByTokenId: null,
      secrets: [],
      now: new Date().toISOString(),
    });
    await queue.start();
    const used: boolean[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const { task, attempts } = await queue.submit({
          environmentId: warm.id,
          prompt: '',
          command: 'cat README.md',
          ref: {},
          attempts: 1,
        });
        expect((await queue.waitForTask(task.id)).status).toBe('succeeded');
        const events = await store.listAttemptEvents(attempts[0]?.id ?? '');
        used.push(events.some((e) => e.type === 'log' && e.text.includes('started ahead of time')));
        // Give the pool time to start the next one (it does so in the background).
        await new Promise((resolve) => setTimeout(resolve, 2_500));
      }
    } finally {
      await queue.stop();
    }
    // The first built the cache, the second resumed normally and filled the pool, the third used it.
    expect(used).toEqual([false, false, true]);
    expect(await runtime.list({ [WARM_OWNER_LABEL]: owner })).toEqual([]);
  });

  it('removes warm sandboxes of an orchestrator that holds no lease', async () => {
    const left = await runtime.create({
      image,
      labels: { [WARM_OWNER_LABEL]: 'orch-dead-1234' },
      resources: { cpus: 1, memoryMb: 128, pids: 64 },
    });
    await scheduler('true').recover();
    expect(
      (await runtime.list({ [WARM_OWNER_LABEL]: 'orch-dead-1234' })).map((s) => s.id),
    ).not.toContain(left.id);
  });

  it('cancels a running attempt, stops its command and removes its sandbox and network', async () => {
    const queue = scheduler('sleep 300');
    await queue.start();
    try {
      const { task, attempts } = await queue.submit({
        environmentId,
        prompt: '',
        command: 'sleep 300',
        ref: {},
        attempts: 1,
      });
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
      const attempt = await store.getAttempt(attemptId);
      expect(attempt?.phase).toBe('cancelled');
      expect(attempt?.error?.message).toBe('the attempt was cancelled during agent');
      expect(phases.at(-1)).toBe('cancelled');
      expect(await runtime.list({ 'berth.attempt': attemptId })).toEqual([]);
      expect(await runtime.listNetworks({ 'berth.attempt': attemptId })).toEqual([]);
    } finally {
      await queue.stop({ cancelRunning: true });
    }
  });

  it('after an orchestrator died: starts an attempt over that had not reached the agent, fails one that had, removes what both left', async () => {
    const queue = scheduler('cat README.md');
    const { task, attempts } = await queue.submit({
      environmentId,
      prompt: '',
      command: 'cat README.md',
      ref: {},
      attempts: 2,
    });
    const [inSetup, inAgent] = attempts.map((a) => a.id);
    if (inSetup === undefined || inAgent === undefined) throw new Error('two attempts expected');
    // A previous orchestrator claimed both, got one to setup and one to the agent, and died.
    const past = new Date(Date.now() - 60_000).toISOString();
    for (const [id, phase] of [
      [inSetup, 'setup'],
      [inAgent, 'agent'],
    ] as const) {
      expect(
        (await store.claimNextAttempt({ owner: 'dead-orchestrator', now: past, leaseMs: 1_000 }))
          ?.id,
      ).toBe(id);
      await store.updateAttempt(id, { phase }, { leaseOwner: 'dead-orchestrator' });
      await store.appendAttemptEvents([
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
        image,
        labels,
        resources: { cpus: 1, memoryMb: 128, pids: 64 },
      });
      left.push(sandbox.id);
    }

    expect(await queue.recover()).toBe(2);
    expect(await queue.recover()).toBe(0);
    const failed = await store.getAttempt(inAgent);
    expect(failed?.phase).toBe('failed');
    expect(failed?.error?.message).toBe('orchestrator restarted during agent');
    expect((await store.listAttemptEvents(inAgent)).map((e) => e.type)).toEqual([
      'phase',
      'phase',
      'error',
      'phase',
    ]);
    const requeued = await store.getAttempt(inSetup);
    expect(requeued).toMatchObject({ phase: 'queued', leaseOwner: null, startedAt: null });
    const restartEvent = (await store.listAttemptEvents(inSetup)).at(-2);
    expect(restartEvent).toMatchObject({
      seq: 3,
      type: 'warning',
      message: 'orchestrator restarted during setup; the attempt starts over',
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
      const rerun = await store.getAttempt(inSetup);
      expect(rerun?.phase).toBe('succeeded');
      expect(rerun?.result?.commands[0]?.output).toContain('# sample');
      const seqs = (await store.listAttemptEvents(inSetup)).map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      expect(seqs.length).toBeGreaterThan(4);
    } finally {
      await queue.stop({ cancelRunning: true });
    }
  });

  it('a berth run (claiming its own tasks only) fails what another run left instead of queueing it', async () => {
    const { task, attempts } = await scheduler('true').submit({
      environmentId,
      prompt: '',
      command: 'true',
      ref: {},
      attempts: 1,
    });
    const id = attempts[0]?.id ?? '';
    const past = new Date(Date.now() - 60_000).toISOString();
    await store.claimNextAttempt({
      owner: 'dead-run',
      now: past,
      leaseMs: 1_000,
      taskIds: [task.id],
    });
    await store.updateAttempt(id, { phase: 'setup' }, { leaseOwner: 'dead-run' });
    const run = new Scheduler({
      store,
      runner: new AttemptRunner({
        runtime,
        cache: store,
        enforcer: new NoNetworkEnforcer(),
        resolveImage: () => image,
        cacheTtlMs: 3600_000,
        snapshotTtlMs: 3600_000,
        allowLocalRepositories: true,
      }),
      runtime,
      openSecrets: () => Promise.resolve({}),
      agentFor: () => new CommandAgent('true'),
      concurrency: 1,
      onlyTasks: new Set(['task_of_this_run']),
    });
    expect(await run.recover()).toBe(1);
    const attempt = await store.getAttempt(id);
    expect(attempt?.phase).toBe('failed');
    expect(attempt?.error?.message).toBe('orchestrator restarted during setup');
  });

  it('fails an attempt that already started over twice when its orchestrator dies again', async () => {
    const queue = scheduler('true');
    const { task, attempts } = await queue.submit({
      environmentId,
      prompt: '',
      command: 'true',
      ref: {},
      attempts: 1,
    });
    const id = attempts[0]?.id ?? '';
    const past = new Date(Date.now() - 60_000).toISOString();
    await store.claimNextAttempt({
      owner: 'dead-orchestrator',
      now: past,
      leaseMs: 1_000,
      taskIds: [task.id],
    });
    await store.updateAttempt(id, { phase: 'setup' }, { leaseOwner: 'dead-orchestrator' });
    await store.appendAttemptEvents(
      [1, 2].map((seq) => ({
        attemptId: id,
        seq,
        at: past,
        type: 'warning' as const,
        message: 'orchestrator restarted during setup; the attempt starts over',
        details: { reason: 'orchestrator_restart', phase: 'setup' },
      })),
    );
    expect(await queue.recover()).toBe(1);
    const attempt = await store.getAttempt(id);
    expect(attempt?.phase).toBe('failed');
    expect(attempt?.error?.message).toBe(
      'orchestrator restarted during setup (the attempt had started over 2 time(s) already)',
    );
  });

  it('collects a cache image that was committed but never recorded, and keeps a recorded one', async () => {
    const sandbox = await runtime.create({
      image,
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
      await store.publishCacheEntry({
        id: newId('cacheEntry'),
        environmentId,
        key: 'k',
        parts: {
          version: 1,
          baseImage: 'x',
          repository: { url: repo.dir, defaultBranch: 'main' },
          versions: {},
          setup: null,
          maintenance: null,
          env: {},
          secrets: {},
        },
        image: `berth-cache:kept-${process.pid}`,
        imageId: kept.id,
        sizeBytes: kept.sizeBytes,
        commit: repo.mainCommit,
        exportNames: [],
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + 3600_000).toISOString(),
      });
      const result = await new CacheCollector(store, runtime, 0).collect();
      expect(result.images).toBeGreaterThanOrEqual(1);
      expect(await runtime.imageExists(orphan.id)).toBe(false);
      expect(await runtime.imageExists(kept.id)).toBe(true);
    } finally {
      await runtime.remove(sandbox.id);
    }
  });
});
