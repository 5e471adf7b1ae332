import { pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import { newId } from '../../src/domain/ids.js';
import {
  closeTaskQueueWorld,
  commandScheduler,
  openTaskQueueWorld,
  submitCommand,
  type TaskQueueWorld,
} from './task-queue-support.js';

/**
 * An environment whose default branch was assumed (`main`: the remote not asked when it was
 * written) on a repository whose default branch is `master` (issue 20 item 1): at the attempt's
 * start the scheduler asks the remote, stores `master` (origin `found`) and logs it, and the
 * attempt clones `master` and succeeds. Without the asking (the old code) the same attempt fails
 * at the clone with what to write. A named branch is never replaced.
 */

const instance = `assumedbr-${process.pid}`;
const runtime = new DockerRuntime({ instance });
let world: TaskQueueWorld;
let url: string;

beforeAll(async () => {
  world = await openTaskQueueWorld('assumed');
  execFileSync('git', ['-C', world.repo.dir, 'branch', '-m', 'main', 'master']);
  url = pathToFileURL(world.repo.dir).href;
});

afterAll(async () => {
  await closeTaskQueueWorld(world, instance);
});

async function environment(name: string, origin: 'assumed' | 'named'): Promise<string> {
  const id = newId('environment');
  await world.store.createEnvironment({
    id,
    spec: parseEnvironmentSpec({ image: 'minimal', name, repository: url }),
    createdByTokenId: null,
    secrets: [],
    now: new Date().toISOString(),
    defaultBranchOrigin: origin,
  });
  return id;
}

async function runOnce(
  environmentId: string,
  asking: boolean,
): Promise<{ status: string; log: string }> {
  const queue = commandScheduler(
    world,
    runtime,
    asking ? { defaultBranch: { allowLocalRepositories: true } } : {},
  );
  await queue.start();
  try {
    const { task, attempts } = await submitCommand(
      queue,
      environmentId,
      'git branch --show-current; cat README.md',
    );
    const done = await queue.waitForTask(task.id);
    const events = await world.store.listAttemptEvents(attempts[0]?.id ?? '');
    const log = events
      .map((e) => (e.type === 'log' ? e.text : e.type === 'error' ? e.message : ''))
      .join('');
    return { status: done.status, log };
  } finally {
    await queue.stop();
  }
}

describe('an assumed default branch at the attempt start', () => {
  it('is found on the remote and stored before the cache key; the attempt succeeds on master', async () => {
    const before = await environment('assumed-old', 'assumed');
    const old = await runOnce(before, false);
    expect(old.status).toBe('failed');
    expect(old.log).toContain('the repository has no branch "main"');

    const id = await environment('assumed-new', 'assumed');
    const run = await runOnce(id, true);
    expect(run.log).toContain('default branch: master (found on the remote)');
    expect(run.log).toContain('# sample');
    expect(run.status).toBe('succeeded');
    const stored = await world.store.getEnvironmentById(id);
    expect(stored?.spec.repository.defaultBranch).toBe('master');
    expect(stored?.defaultBranchOrigin).toBe('found');

    // Found once: the next attempt asks nothing (no second log line) and hits the cache.
    const again = await runOnce(id, true);
    expect(again.status).toBe('succeeded');
    expect(again.log).not.toContain('found on the remote');
  }, 300_000);

  it('never replaces a named branch', async () => {
    const id = await environment('named-main', 'named');
    const run = await runOnce(id, true);
    expect(run.status).toBe('failed');
    expect(run.log).not.toContain('found on the remote');
    expect(run.log).toContain('the repository has no branch "main"');
    const stored = await world.store.getEnvironmentById(id);
    expect(stored?.spec.repository.defaultBranch).toBe('main');
    expect(stored?.defaultBranchOrigin).toBe('named');
  }, 120_000);
});
