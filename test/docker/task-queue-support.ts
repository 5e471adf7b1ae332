import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SandboxRuntime } from '../../src/ports/sandbox-runtime.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import { newId } from '../../src/domain/ids.js';
import { AttemptRunner, type AttemptRunnerOptions } from '../../src/lifecycle/attempt-runner.js';
import { CommandAgent } from '../../src/lifecycle/command-agent.js';
import { NoNetworkEnforcer } from '../../src/lifecycle/network-policy-enforcer.js';
import { Scheduler, type SchedulerOptions } from '../../src/lifecycle/scheduler.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * The task queue of the lifecycle tests on a real engine: a real SQLite store in a temporary
 * folder, the sample repository, one `minimal` environment on it, and the attempt runner and
 * scheduler built the way the orchestrator builds them (no network, local repositories allowed,
 * the agent phase a `--command`).
 */
export interface TaskQueueWorld {
  image: string;
  repo: ReturnType<typeof makeSampleRepository>;
  dir: string;
  store: SqliteStore;
  /** The environment `name` on the sample repository (image `minimal`). */
  environmentId: string;
}

/** Opens the store (migrated) and stores the environment `name` on a fresh sample repository. */
export async function openTaskQueueWorld(name: string): Promise<TaskQueueWorld> {
  const image = lifecycleTestImage();
  const repo = makeSampleRepository();
  const dir = mkdtempSync(join(tmpdir(), `berth-${name}-`));
  const store = SqliteStore.open(dir);
  await store.migrate();
  const environmentId = await addEnvironment(store, { name, repository: repo.dir });
  return { image, repo, dir, store, environmentId };
}

/** Closes the store, removes the instance's images, the store's folder and the sample repository. */
export async function closeTaskQueueWorld(world: TaskQueueWorld, instance: string): Promise<void> {
  await world.store.close();
  removeInstanceImages(instance);
  rmSync(world.dir, { recursive: true, force: true });
  rmSync(world.repo.dir, { recursive: true, force: true });
}

/** Stores an environment (image `minimal` unless the file says otherwise) and returns its id. */
export async function addEnvironment(
  store: SqliteStore,
  file: Record<string, unknown> & { name: string; repository: string },
): Promise<string> {
  const id = newId('environment');
  await store.createEnvironment({
    id,
    spec: parseEnvironmentSpec({ image: 'minimal', ...file }),
    createdByTokenId: null,
    secrets: [],
    now: new Date().toISOString(),
  });
  return id;
}

/** An attempt runner with no network, an hour of cache and snapshot life, local repositories allowed. */
function localAttemptRunner(
  world: Pick<TaskQueueWorld, 'store' | 'image'>,
  runtime: SandboxRuntime,
  extra: Partial<AttemptRunnerOptions> = {},
): AttemptRunner {
  return new AttemptRunner({
    runtime,
    cache: world.store,
    enforcer: new NoNetworkEnforcer(),
    resolveImage: () => world.image,
    cacheTtlMs: 3600_000,
    snapshotTtlMs: 3600_000,
    allowLocalRepositories: true,
    ...extra,
  });
}

/**
 * A scheduler over `localAttemptRunner` (sharing its warm pool when `extra` names one) whose agent
 * phase runs each task's `--command` (`true` when it has none), two attempts at a time, polling
 * every 100 ms; `extra` overrides any of it.
 */
export function commandScheduler(
  world: Pick<TaskQueueWorld, 'store' | 'image'>,
  runtime: SandboxRuntime,
  extra: Partial<SchedulerOptions> = {},
): Scheduler {
  const runner = localAttemptRunner(
    world,
    runtime,
    extra.warmPool !== undefined ? { warmPool: extra.warmPool } : {},
  );
  return new Scheduler({
    store: world.store,
    runner,
    runtime,
    openSecrets: () => Promise.resolve({}),
    agentFor: (task) => new CommandAgent(task.command ?? 'true'),
    concurrency: 2,
    pollMs: 100,
    ...extra,
  });
}

/** Submits a task of `attempts` attempts (one by default) whose agent phase runs `command`. */
export async function submitCommand(
  queue: Scheduler,
  environmentId: string,
  command: string,
  attempts = 1,
): ReturnType<Scheduler['submit']> {
  return await queue.submit({ environmentId, prompt: '', command, ref: {}, attempts });
}

/** Writes `files` into the sample repository's `.berth` folder (made already) and commits them. */
export function commitBerthFiles(
  world: Pick<TaskQueueWorld, 'repo'>,
  files: Record<string, string>,
  message: string,
): void {
  const dir = world.repo.dir;
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, '.berth', name), text);
  execFileSync('git', ['-C', dir, 'add', '-A']);
  execFileSync('git', [
    '-C',
    dir,
    '-c',
    'user.name=t',
    '-c',
    'user.email=t@t',
    'commit',
    '-qm',
    message,
  ]);
}

/**
 * Starts `queue`, runs one task of one attempt whose agent phase runs `command` to its end and
 * stops the queue: the task's status and the attempt's events as text (its log output, errors,
 * cache results and warnings, one a line).
 */
export async function runCommandOnce(
  queue: Scheduler,
  store: SqliteStore,
  task: { environmentId: string; command: string; ref: { branch?: string } },
): Promise<{ status: string; log: string }> {
  await queue.start();
  try {
    const { task: submitted, attempts } = await queue.submit({
      ...task,
      prompt: '',
      attempts: 1,
    });
    const done = await queue.waitForTask(submitted.id);
    const events = await store.listAttemptEvents(attempts[0]?.id ?? '');
    const log = events
      .map((e) =>
        e.type === 'log'
          ? e.text
          : e.type === 'error'
            ? `error: ${e.message}\n`
            : e.type === 'cache'
              ? `cache ${e.result}: ${e.reason}\n`
              : e.type === 'warning'
                ? `warning: ${e.message}\n`
                : '',
      )
      .join('');
    return { status: done.status, log };
  } finally {
    await queue.stop();
  }
}
