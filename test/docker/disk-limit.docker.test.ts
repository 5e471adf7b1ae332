import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import { newId } from '../../src/domain/ids.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import { createOrchestrator, type Orchestrator } from '../../src/lifecycle/orchestrator.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * "A disk that fills up: clear errors, other tasks unaffected", on a real engine. overlay2 here
 * has no per-container quota, so `resources.diskMb` is enforced by the orchestrator's watchdog.
 * The writer stops at 400 MB whatever happens, so the host's disk is never at risk.
 */

const instance = `disk-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let dir: string;
let store: SqliteStore;
let runtime: DockerRuntime;

// 100 chunks of 4 MB, a short pause between them so the watchdog sees the growth.
const WRITER =
  'for i in $(seq 1 100); do head -c 4194304 /dev/zero > /workspace/blob-$i; sleep 0.05; done; echo wrote everything';

function orchestrator(minFreeDiskMb?: number): Orchestrator {
  return createOrchestrator({
    store,
    runtime,
    openSecrets: () => Promise.resolve({}),
    cacheTtlMs: 3600_000,
    snapshotTtlMs: 3600_000,
    allowLocalRepositories: true,
    concurrency: 2,
    maxAttempts: 4,
    resolveImage: () => image,
    pollMs: 100,
    diskPollMs: 1_000,
    ...(minFreeDiskMb !== undefined ? { minFreeDiskMb } : {}),
  });
}

async function environment(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const id = newId('environment');
  await store.createEnvironment({
    id,
    spec: parseEnvironmentSpec({ name, repository: repo.dir, image: 'minimal', ...extra }),
    createdByTokenId: null,
    secrets: [],
    now: new Date().toISOString(),
  });
  return id;
}

/**
 * Submits a task of `attempts` attempts running `true` on `environmentId`, starts the queue and
 * waits (at most `timeoutMs`) for the task to end; returns its attempts, as submitted and as stored.
 */
async function runToEnd(
  orch: Orchestrator,
  environmentId: string,
  attempts: number,
  timeoutMs: number,
): Promise<{ attempts: Attempt[]; stored: Array<Attempt | undefined> }> {
  const submitted = await orch.scheduler.submit({
    environmentId,
    prompt: '',
    command: 'true',
    ref: {},
    attempts,
  });
  await orch.scheduler.start();
  await orch.scheduler.waitForTask(submitted.task.id, AbortSignal.timeout(timeoutMs));
  const stored = await Promise.all(submitted.attempts.map((a) => store.getAttempt(a.id)));
  return { attempts: submitted.attempts, stored };
}

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  dir = mkdtempSync(join(tmpdir(), 'berth-disk-'));
  store = SqliteStore.open(dir);
  await store.migrate();
  runtime = new DockerRuntime({ instance });
});

afterAll(async () => {
  await store.close();
  removeInstanceImages(instance);
  rmSync(dir, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('disk limits on a real engine', () => {
  it('stops an attempt that writes past resources.diskMb with a clear error; another task runs on', async () => {
    const hog = await environment('disk-hog', { resources: { diskMb: 100 } });
    const calm = await environment('disk-calm');
    const orch = orchestrator();
    try {
      const hogTask = await orch.scheduler.submit({
        environmentId: hog,
        prompt: '',
        command: WRITER,
        ref: {},
        attempts: 1,
      });
      const calmTask = await orch.scheduler.submit({
        environmentId: calm,
        prompt: '',
        command: 'sleep 6; head -c 8388608 /dev/zero > /workspace/small; echo calm done',
        ref: {},
        attempts: 1,
      });
      await orch.scheduler.start();
      await orch.scheduler.waitForTask(hogTask.task.id, AbortSignal.timeout(120_000));
      await orch.scheduler.waitForTask(calmTask.task.id, AbortSignal.timeout(120_000));

      const [hogAttempt] = await store.listAttempts(hogTask.task.id);
      expect(hogAttempt?.phase).toBe('failed');
      expect(hogAttempt?.error?.code).toBe('disk_full');
      expect(hogAttempt?.error?.message).toMatch(
        /^disk limit exceeded: wrote \d+ MB, limit 100 MB \(resources\.diskMb\)$/,
      );
      const written = Number(/wrote (\d+) MB/.exec(hogAttempt?.error?.message ?? '')?.[1]);
      expect(written).toBeGreaterThan(100);
      expect(written).toBeLessThan(400);
      expect(hogAttempt?.error?.details).toMatchObject({ phase: 'agent', limitMb: 100 });
      // The writer never finished, and its sandbox is gone.
      const hogEvents = await store.listAttemptEvents(hogAttempt?.id ?? '');
      const hogLog = hogEvents.map((e) => (e.type === 'log' ? e.text : '')).join('');
      expect(hogLog).not.toContain('wrote everything');
      expect(await runtime.list({ 'berth.attempt': hogAttempt?.id ?? '' })).toEqual([]);

      const [calmAttempt] = await store.listAttempts(calmTask.task.id);
      expect(calmAttempt?.phase).toBe('succeeded');
      expect(calmAttempt?.result?.commands[0]?.output).toContain('calm done');
      // The two ran at the same time: the calm one started before the hog was stopped.
      expect(Date.parse(calmAttempt?.startedAt ?? '')).toBeLessThan(
        Date.parse(hogAttempt?.finishedAt ?? ''),
      );
    } finally {
      await orch.scheduler.stop({ cancelRunning: true });
    }
  });

  it('stops a setup that writes past the limit: no cache entry, and the attempts waiting for it fail the same way', async () => {
    const envId = await environment('disk-setup', {
      resources: { diskMb: 100 },
      setup: WRITER,
    });
    const orch = orchestrator();
    try {
      const { attempts, stored } = await runToEnd(orch, envId, 2, 120_000);
      expect(stored.map((a) => a?.phase)).toEqual(['failed', 'failed']);
      for (const attempt of stored) {
        expect(attempt?.error?.code).toBe('disk_full');
        expect(attempt?.error?.message).toMatch(/^disk limit exceeded: wrote \d+ MB, limit 100 MB/);
      }
      // One setup ran (the other attempt waited for it); nothing was published.
      const setups = await Promise.all(
        attempts.map(async (a) =>
          (await store.listAttemptEvents(a.id)).some(
            (e) => e.type === 'phase' && e.phase === 'setup',
          ),
        ),
      );
      expect(setups.filter(Boolean)).toHaveLength(1);
      expect(await store.listCacheEntries(envId)).toEqual([]);
      for (const a of attempts) expect(await runtime.list({ 'berth.attempt': a.id })).toEqual([]);
    } finally {
      await orch.scheduler.stop({ cancelRunning: true });
    }
  });

  it('says a disk is full when a setup script fails on "No space left on device"', async () => {
    // /dev/shm is the sandbox's own 64 MB tmpfs: filling it never touches the host's disk.
    const envId = await environment('disk-shm', {
      setup: 'echo filling\nhead -c 100000000 /dev/zero > /dev/shm/fill\necho never here',
    });
    const orch = orchestrator();
    try {
      const [attempt] = (await runToEnd(orch, envId, 1, 60_000)).stored;
      expect(attempt?.phase).toBe('failed');
      expect(attempt?.error?.message).toBe(
        'setup script failed at line 2: `head -c 100000000 /dev/zero > /dev/shm/fill` exited with code 1 (the output says "No space left on device": a disk is full)',
      );
      expect(attempt?.error?.details).toMatchObject({ reason: 'setup', diskFull: true });
    } finally {
      await orch.scheduler.stop({ cancelRunning: true });
    }
  });

  it('refuses to start an attempt below the free-disk floor, naming the space and the floor', async () => {
    const envId = await environment('disk-floor');
    // A floor no disk here reaches (a petabyte): the check refuses before anything is created.
    const orch = orchestrator(1024 * 1024 * 1024);
    try {
      const [attempt] = (await runToEnd(orch, envId, 1, 60_000)).stored;
      expect(attempt?.phase).toBe('failed');
      expect(attempt?.error?.code).toBe('disk_full');
      expect(attempt?.error?.message).toMatch(
        /^not enough free disk to start an attempt: \d+ MB free in \/\S+ \(where the Docker engine keeps its data\), below the floor of 1073741824 MB \(BERTH_MIN_FREE_DISK_MB\)$/,
      );
      const events = await store.listAttemptEvents(attempt?.id ?? '');
      expect(events.some((e) => e.type === 'log' && e.text.startsWith('sandbox '))).toBe(false);
      expect(await runtime.list({ 'berth.attempt': attempt?.id ?? '' })).toEqual([]);
    } finally {
      await orch.scheduler.stop({ cancelRunning: true });
    }
  });
});
