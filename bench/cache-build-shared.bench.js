/* global process, console */
// Cache builds shared by orchestrators: 8 tasks submitted at once on one environment with no
// cache, split over two orchestrators (4 each; each its own runtime object, store connection and
// lease owner) on one SQLite file, on the local Docker engine. Reports how many setup runs there
// were (must be 1), how many attempts waited on the other orchestrator through the store, and the
// wall time from submit to the last attempt's end, against the setup script's own time (2 s).
//
// Run: npx tsc -b && node bench/cache-build-shared.bench.js [--image REF]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { DockerRuntime } from '../dist/adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../dist/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../dist/domain/environment/environment-file.js';
import { newId } from '../dist/domain/ids.js';
import { createOrchestrator } from '../dist/lifecycle/orchestrator.js';
import { benchImage } from './bench-support.js';

const IMAGE = benchImage();
const INSTANCES = [`bench-cbs-a-${process.pid}`, `bench-cbs-b-${process.pid}`];

const dir = mkdtempSync(join(os.tmpdir(), 'berth-bench-cbs-'));
const repo = join(dir, 'repo');
execFileSync('git', ['init', '-q', '-b', 'main', repo]);
writeFileSync(join(repo, 'README.md'), '# bench\n');
execFileSync('git', ['-C', repo, 'add', '-A']);
execFileSync('git', [
  '-C',
  repo,
  '-c',
  'user.name=b',
  '-c',
  'user.email=b@berth.example',
  'commit',
  '-qm',
  'init',
]);

const stores = [SqliteStore.open(join(dir, 'data')), SqliteStore.open(join(dir, 'data'))];
for (const store of stores) await store.migrate();
const environmentId = newId('environment');
await stores[0].createEnvironment({
  id: environmentId,
  spec: parseEnvironmentSpec({
    name: 'bench-shared',
    repository: repo,
    image: 'minimal',
    setup: 'sleep 2; echo built > /root/built',
  }),
  createdByTokenId: null,
  secrets: [],
  now: new Date().toISOString(),
});
const orchestrators = stores.map((store, i) =>
  createOrchestrator({
    store,
    runtime: new DockerRuntime({ instance: INSTANCES[i] }),
    openSecrets: () => Promise.resolve({}),
    cacheTtlMs: 3600_000,
    snapshotTtlMs: 3600_000,
    allowLocalRepositories: true,
    concurrency: 4,
    maxAttempts: 8,
    resolveImage: () => IMAGE,
    pollMs: 100,
  }),
);
try {
  const started = Date.now();
  const tasks = [];
  for (const orch of orchestrators)
    for (let i = 0; i < 4; i++)
      tasks.push(
        (
          await orch.scheduler.submit({
            environmentId,
            prompt: '',
            command: 'cat /root/built',
            ref: {},
            attempts: 1,
          })
        ).task.id,
      );
  await Promise.all(orchestrators.map((o) => o.scheduler.start()));
  for (const id of tasks) await orchestrators[0].scheduler.waitForTask(id);
  const wallMs = Date.now() - started;
  const attempts = (await Promise.all(tasks.map((id) => stores[0].listAttempts(id)))).flat();
  let setupRuns = 0;
  let waitedAcross = 0;
  for (const attempt of attempts) {
    const events = await stores[0].listAttemptEvents(attempt.id);
    if (events.some((e) => e.type === 'phase' && e.phase === 'setup')) setupRuns++;
    if (events.some((e) => e.type === 'log' && e.text.startsWith('waiting for the cache entry')))
      waitedAcross++;
  }
  console.log(
    JSON.stringify(
      {
        attempts: attempts.length,
        succeeded: attempts.filter((a) => a.phase === 'succeeded').length,
        setupRuns,
        waitedAcrossOrchestrators: waitedAcross,
        cacheHits: attempts.filter((a) => a.cacheHit === true).length,
        wallMs,
        loadAverage: os.loadavg()[0].toFixed(1),
      },
      null,
      2,
    ),
  );
} finally {
  await Promise.all(orchestrators.map((o) => o.scheduler.stop({ cancelRunning: true })));
  for (const store of stores) await store.close();
  // A cache image of one instance may have snapshots of the other as children: two passes.
  for (const instance of [...INSTANCES, ...INSTANCES]) {
    const images = execFileSync(
      'docker',
      ['images', '-q', '--filter', `label=berth.instance=${instance}`],
      { encoding: 'utf8' },
    ).trim();
    for (const id of new Set(images.split('\n').filter(Boolean)).values())
      try {
        execFileSync('docker', ['rmi', '-f', id], { stdio: 'ignore' });
      } catch {
        // a child image of another instance; the reaper's
      }
  }
  rmSync(dir, { recursive: true, force: true });
}
