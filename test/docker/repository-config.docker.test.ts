import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import {
  addEnvironment,
  closeTaskQueueWorld,
  commandScheduler,
  commitBerthFiles,
  openTaskQueueWorld,
  runCommandOnce,
  type TaskQueueWorld,
} from './task-queue-support.js';

/**
 * `repository.config` through the real scheduler and engine (issue 16, Show): an environment whose
 * setup and variables live in `.berth/environment.yaml` in the repository builds its cache from
 * them; a commit that changes the file rebuilds the cache and the log says why ("repository file
 * .berth/environment.yaml changed"); a bad file fails the attempt before any sandbox, with the
 * field path, line and column; a task on a branch whose file differs keeps main's cache and setup
 * and runs the branch's maintenance and env (the log says so).
 */

const instance = `repofile-${process.pid}`;
const runtime = new DockerRuntime({ instance });
let world: TaskQueueWorld;
let environmentId: string;

function commitFile(text: string): void {
  commitBerthFiles(world, { 'environment.yaml': text }, 'environment file');
}

async function runOnce(branch?: string): Promise<{ status: string; log: string }> {
  const queue = commandScheduler(world, runtime);
  return await runCommandOnce(queue, world.store, {
    environmentId,
    command: 'echo "agent sees FROM_FILE=$FROM_FILE"; cat /tmp/built-by',
    ref: branch === undefined ? {} : { branch },
  });
}

beforeAll(async () => {
  world = await openTaskQueueWorld('repofile');
  mkdirSync(join(world.repo.dir, '.berth'));
  commitFile('setup: echo one > /tmp/built-by\nenv:\n  FROM_FILE: one\n');
  const spec = {
    name: 'repofile-env',
    repository: { url: world.repo.dir, defaultBranch: 'main', config: '.berth/environment.yaml' },
  };
  environmentId = await addEnvironment(world.store, spec);
  // What the environment wrote (the environment service keeps it; its own fields win).
  await world.store.putWrittenSpec(environmentId, {
    extends: '',
    spec: { ...spec, image: 'minimal' },
  });
});

afterAll(async () => {
  await closeTaskQueueWorld(world, instance);
});

describe('repository.config', () => {
  it('builds from the file, rebuilds when a commit changes it (saying why), fails early on a bad one', async () => {
    const first = await runOnce();
    expect(first.status, first.log).toBe('succeeded');
    expect(first.log).toMatch(/repository file \.berth\/environment\.yaml at [0-9a-f]{12}/);
    expect(first.log).toContain('agent sees FROM_FILE=one');
    expect(first.log).toMatch(/^one$/m);

    commitFile('setup: echo two > /tmp/built-by\nenv:\n  FROM_FILE: two\n');
    const second = await runOnce();
    expect(second.status, second.log).toBe('succeeded');
    expect(second.log).toMatch(
      /cache miss: cache rebuilt because: .*repository file \.berth\/environment\.yaml changed/,
    );
    expect(second.log).toContain('agent sees FROM_FILE=two');
    expect(second.log).toMatch(/^two$/m);

    // A task on a branch without the file: the attempt says it runs main's for every phase.
    const onBranch = await runOnce('feature');
    expect(onBranch.status, onBranch.log).toBe('succeeded');
    expect(onBranch.log).toMatch(
      /warning: \.berth\/environment\.yaml differs on the task's branch feature \(not there\) from main's: this attempt runs main's for every phase/,
    );
    expect(second.log).not.toMatch(/differs on the task's branch/);

    // A task on a branch whose file changes setup, maintenance and env: the cache (its key,
    // setup) stays main's; maintenance and the agent get the branch's, and the log says so.
    const git = (...args: string[]) =>
      execFileSync('git', [
        '-C',
        world.repo.dir,
        '-c',
        'user.name=t',
        '-c',
        'user.email=t@t',
        ...args,
      ]);
    git('checkout', '-q', '-b', 'changed', 'main');
    writeFileSync(
      join(world.repo.dir, '.berth', 'environment.yaml'),
      'setup: echo branch > /tmp/built-by\nmaintenance: echo "maintenance from the branch"\nenv:\n  FROM_FILE: branch\n',
    );
    git('commit', '-qam', 'file on the branch');
    git('checkout', '-q', 'main');
    const changed = await runOnce('changed');
    expect(changed.status, changed.log).toBe('succeeded');
    expect(changed.log).not.toMatch(/cache rebuilt/);
    expect(changed.log).toMatch(
      /repository file \.berth\/environment\.yaml differs on branch changed \(commit [0-9a-f]{12}\): maintenance and agent use the branch's \(maintenance, env\); setup stays main's/,
    );
    expect(changed.log).toContain('maintenance from the branch');
    expect(changed.log).toContain('agent sees FROM_FILE=branch');
    expect(changed.log).toMatch(/^two$/m);

    commitFile('setup: echo three\nsetpu: typo\n');
    const third = await runOnce();
    expect(third.status).toBe('failed');
    expect(third.log).toMatch(
      /repository file \.berth\/environment\.yaml: setpu: not a field of a repository file .*\(line 2, column 1\)/,
    );
    expect(third.log).not.toMatch(/^sandbox [0-9a-f]{12}/m);
  });
});
