import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { PostgresStore } from '../../src/adapters/store/postgres/postgres-store.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import { newId } from '../../src/domain/ids.js';
import type { AttemptEvent } from '../../src/domain/task/attempt-event.js';
import { createOrchestrator, type Orchestrator } from '../../src/lifecycle/orchestrator.js';
import type { LeasedAttempt, Store } from '../../src/ports/store.js';
import { cacheKey, cacheKeyParts } from '../../src/domain/cache/cache-key.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { findPostgresBin, startPostgres, type PostgresServer } from '../store/postgres-server.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * "Concurrent tasks of one environment build the cache once" across orchestrators: two
 * orchestrators (each its own runtime object, store connection and lease owner) on ONE store, a
 * real PostgreSQL and one SQLite file, a real Docker engine. The setup script writes a random id
 * into the image; every attempt prints it, so two builds could not hide.
 */

const instances = [`cbs-a-${process.pid}`, `cbs-b-${process.pid}`];
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
const postgresBin = findPostgresBin();
let postgres: PostgresServer | undefined;
const dirs: string[] = [];

const SETUP = [
  'cat /proc/sys/kernel/random/uuid > /root/build-id',
  'echo "setup ran" >> /root/setup-runs',
  'sleep 5',
].join('\n');
const COMMAND = 'cat /root/build-id; wc -l < /root/setup-runs';

interface StorePair {
  stores: [Store, Store];
  close: () => Promise<void>;
}

const backends: { name: string; open(): Promise<StorePair> }[] = [
  {
    name: 'one SQLite file',
    open: () => {
      const dir = mkdtempSync(join(tmpdir(), 'berth-cache-shared-'));
      dirs.push(dir);
      const a = SqliteStore.open(dir);
      const b = SqliteStore.open(dir);
      return Promise.resolve({
        stores: [a, b],
        close: async () => {
          await a.close();
          await b.close();
        },
      });
    },
  },
  {
    name: 'one PostgreSQL database',
    open: async () => {
      if (!postgres) throw new Error('PostgreSQL did not start');
      const database = await postgres.createDatabase();
      const connect = () =>
        PostgresStore.connect({
          host: postgres?.socketDir ?? '',
          user: postgres?.user ?? '',
          database,
          max: 4,
        });
      const a = connect();
      const b = connect();
      return {
        stores: [a, b],
        close: async () => {
          await a.close();
          await b.close();
        },
      };
    },
  },
];

function orchestrator(
  store: Store,
  instance: string,
  extra: { cacheBuildLeaseMs?: number } = {},
): Orchestrator {
  return createOrchestrator({
    store,
    runtime: new DockerRuntime({ instance }),
    openSecrets: () => Promise.resolve({}),
    cacheTtlMs: 3600_000,
    snapshotTtlMs: 3600_000,
    allowLocalRepositories: true,
    concurrency: 3,
    maxAttempts: 8,
    resolveImage: () => image,
    pollMs: 100,
    ...extra,
  });
}

async function createEnvironment(store: Store, name: string): Promise<string> {
  const id = newId('environment');
  await store.createEnvironment({
    id,
    spec: parseEnvironmentSpec({ name, repository: repo.dir, image: 'minimal', setup: SETUP }),
    createdByTokenId: null,
    secrets: [],
    now: new Date().toISOString(),
  });
  return id;
}

async function submit(orch: Orchestrator, environmentId: string, count: number) {
  const tasks: string[] = [];
  for (let i = 0; i < count; i++) {
    const { task } = await orch.scheduler.submit({
      environmentId,
      prompt: '',
      command: COMMAND,
      ref: {},
      attempts: 1,
    });
    tasks.push(task.id);
  }
  return tasks;
}

async function finished(
  store: Store,
  orchs: Orchestrator[],
  taskIds: string[],
): Promise<{ attempts: LeasedAttempt[]; events: Map<string, AttemptEvent[]> }> {
  const [waiter] = orchs;
  if (waiter === undefined) throw new Error('no orchestrator');
  for (const id of taskIds) await waiter.scheduler.waitForTask(id, AbortSignal.timeout(150_000));
  const attempts = (await Promise.all(taskIds.map((id) => store.listAttempts(id)))).flat();
  const events = new Map<string, AttemptEvent[]>();
  for (const attempt of attempts) events.set(attempt.id, await store.listAttemptEvents(attempt.id));
  return { attempts, events };
}

function setupRuns(events: Map<string, AttemptEvent[]>): number {
  return [...events.values()].filter((list) =>
    list.some((e) => e.type === 'phase' && e.phase === 'setup'),
  ).length;
}

beforeAll(() => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  if (postgresBin !== undefined) postgres = startPostgres(postgresBin);
});

afterAll(() => {
  postgres?.stop();
  // A cache image of one instance may have snapshots of the other as children: two passes.
  for (const instance of [...instances, ...instances]) removeInstanceImages(instance);
  for (const dir of [...dirs, repo.dir]) rmSync(dir, { recursive: true, force: true });
});

for (const backend of backends) {
  const needsPostgres = backend.name.includes('PostgreSQL');
  describe.skipIf(needsPostgres && postgresBin === undefined)(
    `two orchestrators on ${backend.name}`,
    () => {
      it('build a missing cache entry once between them; the others wait and reuse it', async () => {
        const { stores, close } = await backend.open();
        const [storeA, storeB] = stores;
        await storeA.migrate();
        await storeB.migrate();
        const environmentId = await createEnvironment(
          storeA,
          `shared-${newId('task').slice(5, 13)}`,
        );
        const a = orchestrator(storeA, instances[0] ?? '');
        const b = orchestrator(storeB, instances[1] ?? '');
        expect(a.scheduler.owner).not.toBe(b.scheduler.owner);
        try {
          // Three tasks each, submitted together, before either orchestrator starts claiming.
          const taskIds = [
            ...(await submit(a, environmentId, 3)),
            ...(await submit(b, environmentId, 3)),
          ];
          await Promise.all([a.scheduler.start(), b.scheduler.start()]);
          const { attempts, events } = await finished(storeA, [a, b], taskIds);

          expect(attempts.map((x) => x.phase)).toEqual(Array(6).fill('succeeded'));
          expect(attempts.filter((x) => x.cacheHit === false)).toHaveLength(1);
          expect(attempts.filter((x) => x.cacheHit === true)).toHaveLength(5);
          expect(setupRuns(events)).toBe(1);
          expect(await storeA.listCacheEntries(environmentId)).toHaveLength(1);
          // Every attempt saw the one build: the same id, and one line of setup runs.
          const outputs = new Set(attempts.map((x) => x.result?.commands[0]?.output.trim()));
          expect(outputs.size).toBe(1);
          expect([...outputs][0]).toMatch(/^[0-9a-f-]{36}\n1$/);
          // One orchestrator waited on the other through the store (in-process waiters log nothing).
          const waitedAcross = [...events.values()].some((list) =>
            list.some(
              (e) =>
                e.type === 'log' && e.text.startsWith('waiting for the cache entry that orch-'),
            ),
          );
          expect(waitedAcross).toBe(true);
          expect(
            [...events.values()].flat().filter((e) => e.type === 'cache' && e.result === 'built'),
          ).toHaveLength(1);
          // The claim was dropped once the entry was published.
          const entry = (await storeA.listCacheEntries(environmentId))[0];
          expect(await storeB.getCacheBuild(environmentId, entry?.key ?? '')).toBeUndefined();
        } finally {
          await Promise.all([
            a.scheduler.stop({ cancelRunning: true }),
            b.scheduler.stop({ cancelRunning: true }),
          ]);
          await close();
        }
      });

      it('takes over the build of a builder that died (its lease was not renewed)', async () => {
        const { stores, close } = await backend.open();
        const [storeA, storeB] = stores;
        await storeA.migrate();
        await storeB.migrate();
        const name = `takeover-${newId('task').slice(5, 13)}`;
        const environmentId = await createEnvironment(storeA, name);
        const spec = (await storeA.getEnvironmentById(environmentId))?.spec;
        if (spec === undefined) throw new Error('environment missing');
        const key = cacheKey(
          cacheKeyParts({
            environmentId,
            baseImageDigest: (await new DockerRuntime({ instance: 'x' }).inspectImage(image)).id,
            repository: { url: repo.dir, defaultBranch: spec.repository.defaultBranch },
            versions: spec.versions,
            setup: spec.setup,
            maintenance: spec.maintenance,
            env: spec.env,
            secrets: {},
          }),
        );
        // What a builder killed mid-setup leaves in the store: its claim, never renewed again.
        const dead = 'orch-dead-1/att_dead';
        const claimedAt = new Date();
        expect(
          await storeA.claimCacheBuild({
            environmentId,
            key,
            owner: dead,
            now: claimedAt.toISOString(),
            leaseMs: 6_000,
          }),
        ).toBe(true);
        // ... and its setup sandbox, still running on the engine (issue 20 item 13).
        const runtimeB = new DockerRuntime({ instance: instances[1] ?? '' });
        const leftover = await runtimeB.create({
          image,
          labels: { 'berth.attempt': 'att_dead', 'berth.task': 'task_dead', 'berth.cache': key },
          resources: { cpus: 1, memoryMb: 128, pids: 64 },
        });
        await runtimeB.start(leftover.id);
        const b = orchestrator(storeB, instances[1] ?? '', { cacheBuildLeaseMs: 3_000 });
        try {
          const taskIds = await submit(b, environmentId, 2);
          await b.scheduler.start();
          const { attempts, events } = await finished(storeB, [b], taskIds);
          expect(attempts.map((x) => x.phase)).toEqual(['succeeded', 'succeeded']);
          expect(attempts.map((x) => x.cacheHit).sort()).toEqual([false, true]);
          expect(setupRuns(events)).toBe(1);
          const texts = [...events.values()]
            .flat()
            .map((e) => (e.type === 'log' ? e.text : ''))
            .join('');
          expect(texts).toContain(`waiting for the cache entry that ${dead} is building`);
          expect(texts).toContain(`the build of the cache entry by ${dead} stopped`);
          // Its sandbox was stopped before this build started.
          expect(await runtimeB.list({ 'berth.attempt': 'att_dead' })).toEqual([]);
          const builder = [...events.values()].find((list) =>
            list.some((e) => e.type === 'phase' && e.phase === 'setup'),
          );
          const at = (match: (e: AttemptEvent) => boolean) => builder?.findIndex(match) ?? -1;
          const stopped = at(
            (e) =>
              e.type === 'log' &&
              e.text.includes('stopped 1 sandbox(es) of the earlier build (attempt att_dead)'),
          );
          expect(stopped).toBeGreaterThanOrEqual(0);
          expect(stopped).toBeLessThan(at((e) => e.type === 'phase' && e.phase === 'setup'));
          // The entry was built after the dead builder's lease ran out, by B, and published once.
          const entries = await storeB.listCacheEntries(environmentId);
          expect(entries).toHaveLength(1);
          expect(entries[0]?.key).toBe(key);
          expect(Date.parse(entries[0]?.createdAt ?? '')).toBeGreaterThanOrEqual(
            claimedAt.getTime() + 6_000,
          );
          expect(await storeB.getCacheBuild(environmentId, key)).toBeUndefined();
        } finally {
          await b.scheduler.stop({ cancelRunning: true });
          await close();
        }
      });
    },
  );
}
