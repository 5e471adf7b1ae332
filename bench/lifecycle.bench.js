/* global process, console, setTimeout */
// Task lifecycle benchmark on the local Docker engine, through the Scheduler + AttemptRunner with
// an embedded SQLite store (what `berth run` and `berth serve` use):
//  - cached task: submit -> the first agent-phase command running (the command prints the time it
//    started, taken from the same clock), against `docker run --rm IMAGE true` in the same run;
//  - cold task: submit -> first agent command, minus the setup script's own time (it prints its
//    start and end);
//  - 8 tasks at once on an environment with no cache: how many setup runs (must be 1).
//
// Run: npx tsc -b && node bench/lifecycle.bench.js [--quick] [--image REF]
// The image defaults to berth/minimal:latest (BERTH_TEST_IMAGE or --image to override).
// Prints a JSON summary and a Markdown table for docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { DockerRuntime } from '../dist/adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../dist/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../dist/domain/environment/environment-file.js';
import { newId } from '../dist/domain/ids.js';
import { AttemptRunner } from '../dist/lifecycle/attempt-runner.js';
import { CacheBuildLock } from '../dist/lifecycle/cache-build-lock.js';
import { CommandAgent } from '../dist/lifecycle/command-agent.js';
import { NoNetworkEnforcer } from '../dist/lifecycle/network-policy-enforcer.js';
import { leaseOwnerId, Scheduler } from '../dist/lifecycle/scheduler.js';
import { WarmPool } from '../dist/lifecycle/warm-pool.js';
import { benchImage } from './bench-support.js';

const QUICK = process.argv.includes('--quick');
const IMAGE = benchImage();
const CACHED_RUNS = QUICK ? 5 : 15;
const COLD_RUNS = QUICK ? 2 : 3;
const BASELINE_RUNS = QUICK ? 5 : 10;
const INSTANCE = `bench-${process.pid}`;

const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
const nowNs = () => BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
const ms = (ns) => Number(ns) / 1e6;

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}
const summary = (values) => ({
  n: values.length,
  p50: Math.round(quantile(values, 0.5)),
  p90: Math.round(quantile(values, 0.9)),
  min: Math.round(Math.min(...values)),
  max: Math.round(Math.max(...values)),
});

function sampleRepository(dir) {
  mkdirSync(dir, { recursive: true });
  const git = (...args) =>
    execFileSync('git', [
      '-C',
      dir,
      '-c',
      'user.name=b',
      '-c',
      'user.email=b@bench.example',
      ...args,
    ]);
  git('init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'README.md'), '# bench\n');
  writeFileSync(join(dir, 'test.sh'), '#!/bin/bash\necho ok\n', { mode: 0o755 });
  git('add', '-A');
  git('commit', '-qm', 'initial');
}

// The agent command prints the wall-clock time it started (ns), from the kernel's clock that the
// container shares with this process.
const STAMP = 'echo "berth-started=$(date +%s%N)"';

async function main() {
  docker('image', 'inspect', IMAGE);
  const work = mkdtempSync(join(os.tmpdir(), 'berth-bench-lifecycle-'));
  const repo = join(work, 'repo');
  sampleRepository(repo);
  const store = SqliteStore.open(join(work, 'data'));
  await store.migrate();
  const runtime = new DockerRuntime({ instance: INSTANCE });
  const buildLock = new CacheBuildLock();
  const makeScheduler = (warmPool, owner) =>
    new Scheduler({
      store,
      runner: new AttemptRunner({
        runtime,
        cache: store,
        enforcer: new NoNetworkEnforcer(),
        resolveImage: () => IMAGE,
        cacheTtlMs: 3600_000,
        snapshotTtlMs: 3600_000,
        allowLocalRepositories: true,
        buildLock,
        ...(warmPool ? { warmPool } : {}),
      }),
      runtime,
      openSecrets: () => Promise.resolve({}),
      agentFor: (task) => new CommandAgent(task.command ?? 'true'),
      concurrency: 4,
      pollMs: 200,
      ...(owner ? { owner, warmPool } : {}),
    });
  let scheduler = makeScheduler();
  await scheduler.start();

  const environment = async (name, setup) => {
    const spec = parseEnvironmentSpec({
      name,
      repository: repo,
      image: 'minimal',
      ...(setup ? { setup } : {}),
    });
    const created = await store.createEnvironment({
      id: newId('environment'),
      spec,
      createdByTokenId: null,
      secrets: [],
      now: new Date().toISOString(),
    });
    return created.id;
  };

  // One task; returns ms from submit to the agent command's start, the setup's own ms, the events.
  const runTask = async (environmentId) => {
    const submitted = nowNs();
    const { task, attempts } = await scheduler.submit({
      environmentId,
      prompt: '',
      command: STAMP,
      ref: {},
      attempts: 1,
    });
    const done = await scheduler.waitForTask(task.id);
    const attempt = await store.getAttempt(attempts[0].id);
    if (done.status !== 'succeeded')
      throw new Error(`bench task failed: ${JSON.stringify(attempt?.error)}`);
    const out = attempt.result.commands[0].output;
    const started = BigInt(/berth-started=(\d+)/.exec(out)[1]);
    const events = await store.listAttemptEvents(attempt.id);
    const setupText = events
      .filter((e) => e.type === 'log')
      .map((e) => e.text)
      .join('');
    const s0 = /setup-start=(\d+)/.exec(setupText);
    const s1 = /setup-end=(\d+)/.exec(setupText);
    const setupMs = s0 && s1 ? ms(BigInt(s1[1]) - BigInt(s0[1])) : 0;
    const warm = setupText.includes('started ahead of time');
    return { toAgentMs: ms(started - submitted), setupMs, cacheHit: attempt.cacheHit, warm };
  };

  // Baseline: a plain container start and exit, in the same run.
  const baseline = [];
  for (let i = 0; i < BASELINE_RUNS; i++) {
    const t0 = process.hrtime.bigint();
    docker('run', '--rm', '--entrypoint', 'true', IMAGE);
    baseline.push(ms(process.hrtime.bigint() - t0));
  }

  // Cold: each run has a new setup script (so no cache entry matches).
  const cold = [];
  const SETUP_SLEEP = 1;
  for (let i = 0; i < COLD_RUNS; i++) {
    const id = await environment(
      `bench-cold-${i}`,
      `echo "setup-start=$(date +%s%N)"\nsleep ${SETUP_SLEEP}\necho "setup-end=$(date +%s%N)"\n`,
    );
    const r = await runTask(id);
    cold.push({ total: r.toAgentMs, setup: r.setupMs, overhead: r.toAgentMs - r.setupMs });
  }

  // Cached: one environment, the first task builds, the rest measure.
  const cachedEnv = await environment('bench-cached', 'echo prepared > /root/prepared\n');
  await runTask(cachedEnv);
  const cached = [];
  for (let i = 0; i < CACHED_RUNS; i++) {
    const r = await runTask(cachedEnv);
    if (!r.cacheHit) throw new Error('a cached run missed the cache');
    cached.push(r.toAgentMs);
  }

  // 8 tasks at once, no cache: one setup run.
  const burstEnv = await environment('bench-burst', 'echo burst-setup\nsleep 1\n');
  const burst = await Promise.all(
    Array.from({ length: 8 }, () =>
      scheduler.submit({
        environmentId: burstEnv,
        prompt: '',
        command: 'true',
        ref: {},
        attempts: 1,
      }),
    ),
  );
  const burstStart = Date.now();
  let setupRuns = 0;
  for (const { task, attempts } of burst) {
    await scheduler.waitForTask(task.id);
    const events = await store.listAttemptEvents(attempts[0].id);
    if (events.some((e) => e.type === 'phase' && e.phase === 'setup')) setupRuns++;
  }
  const burstMs = Date.now() - burstStart;

  // Cached again, with a warm pool: a sandbox from the entry started ahead of time.
  await scheduler.stop();
  const owner = leaseOwnerId();
  const warmPool = new WarmPool(runtime, owner);
  scheduler = makeScheduler(warmPool, owner);
  await scheduler.start();
  await runTask(cachedEnv);
  const warm = [];
  let warmUsed = 0;
  for (let i = 0; i < CACHED_RUNS; i++) {
    // Between tasks, as between users' tasks: time for the pool to start the next sandbox.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const r = await runTask(cachedEnv);
    warm.push(r.toAgentMs);
    if (r.warm) warmUsed++;
  }
  await scheduler.stop();
  await store.close();
  const images = docker('images', '-q', '--filter', `label=berth.instance=${INSTANCE}`);
  if (images !== '') docker('rmi', '-f', ...new Set(images.split('\n')));
  rmSync(work, { recursive: true, force: true });

  const result = {
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}, Docker ${docker('version', '--format', '{{.Server.Version}}')}`,
    image: IMAGE,
    dockerRunTrueMs: summary(baseline),
    cachedSubmitToAgentMs: summary(cached),
    cachedWarmPoolSubmitToAgentMs: { ...summary(warm), warmUsed },
    coldSubmitToAgentMs: summary(cold.map((c) => c.total)),
    coldSetupScriptMs: summary(cold.map((c) => c.setup)),
    coldOverheadMs: summary(cold.map((c) => c.overhead)),
    burst: { tasks: 8, setupRuns, allDoneMs: burstMs },
  };
  const ratio = result.cachedSubmitToAgentMs.p50 / result.dockerRunTrueMs.p50;
  console.log(JSON.stringify(result, null, 2));
  console.log(`
| measure | p50 | p90 | min | max | n |
| --- | --- | --- | --- | --- | --- |
| \`docker run --rm IMAGE true\` | ${result.dockerRunTrueMs.p50} ms | ${result.dockerRunTrueMs.p90} ms | ${result.dockerRunTrueMs.min} ms | ${result.dockerRunTrueMs.max} ms | ${result.dockerRunTrueMs.n} |
| cached task: submit → first agent command running | ${result.cachedSubmitToAgentMs.p50} ms | ${result.cachedSubmitToAgentMs.p90} ms | ${result.cachedSubmitToAgentMs.min} ms | ${result.cachedSubmitToAgentMs.max} ms | ${result.cachedSubmitToAgentMs.n} |
| cached task, warm pool (${warmUsed}/${warm.length} warm) | ${result.cachedWarmPoolSubmitToAgentMs.p50} ms | ${result.cachedWarmPoolSubmitToAgentMs.p90} ms | ${result.cachedWarmPoolSubmitToAgentMs.min} ms | ${result.cachedWarmPoolSubmitToAgentMs.max} ms | ${warm.length} |
| cold task: submit → first agent command | ${result.coldSubmitToAgentMs.p50} ms | ${result.coldSubmitToAgentMs.p90} ms | ${result.coldSubmitToAgentMs.min} ms | ${result.coldSubmitToAgentMs.max} ms | ${result.coldSubmitToAgentMs.n} |
| cold task: overhead beyond the setup script | ${result.coldOverheadMs.p50} ms | ${result.coldOverheadMs.p90} ms | ${result.coldOverheadMs.min} ms | ${result.coldOverheadMs.max} ms | ${result.coldOverheadMs.n} |

Cached p50 / docker run p50 = ${ratio.toFixed(2)}×. 8 tasks at once with no cache: ${setupRuns} setup run(s), all done in ${burstMs} ms.`);
}

await main();
