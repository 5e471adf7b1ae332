import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { leaseOwnerId, type Scheduler } from '../../src/lifecycle/scheduler.js';
import { WarmPool, warmOwnerOf, type WarmSpec } from '../../src/lifecycle/warm-pool.js';
import { removeInstanceContainers } from '../support/docker-cleanup.js';
import { commandFollowUp } from '../support/follow-up-attempt.js';
import {
  closeTaskQueueWorld,
  commandScheduler,
  openTaskQueueWorld,
  submitCommand,
  type TaskQueueWorld,
} from './task-queue-support.js';

/**
 * The fast paths of a cached attempt on a real engine and a real SQLite file: the snapshot
 * committed after the result (a follow-up waits for it), the checkout skipped when the default
 * branch is still at the cache entry's commit (and not when it moved), and a warm pool sized to
 * the burst of attempts that used it.
 */

const instance = `lcfast-${process.pid}`;
let world: TaskQueueWorld;

/** The real runtime, with commits held back a while (so "after the result" is observable). */
class SlowCommitRuntime extends DockerRuntime {
  override async commit(id: string, options: Parameters<DockerRuntime['commit']>[1]) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    return await super.commit(id, options);
  }
}

const runtime = new SlowCommitRuntime({ instance });

function scheduler(): Scheduler {
  return commandScheduler(world, runtime);
}

function git(...args: string[]): string {
  return execFileSync(
    'git',
    ['-C', world.repo.dir, '-c', 'user.name=B', '-c', 'user.email=b@berth.example', ...args],
    { encoding: 'utf8' },
  ).trim();
}

async function systemLog(attemptId: string): Promise<string> {
  return (await world.store.listAttemptEvents(attemptId))
    .map((e) => (e.type === 'log' ? e.text : e.type === 'warning' ? e.message : ''))
    .join('');
}

beforeAll(async () => {
  world = await openTaskQueueWorld('fast');
});

afterAll(async () => {
  const left = removeInstanceContainers(instance);
  await closeTaskQueueWorld(world, instance);
  expect(left).toBe('');
});

describe('fast paths of a cached attempt (docker)', () => {
  it('records the result before the snapshot commit; a follow-up right after waits for the snapshot and continues from it', async () => {
    const queue = scheduler();
    await queue.start();
    try {
      const { task, attempts } = await submitCommand(
        queue,
        world.environmentId,
        'echo "first turn" > turn1.txt',
      );
      expect((await queue.waitForTask(task.id)).status).toBe('succeeded');
      const parent = await world.store.getAttempt(attempts[0]?.id ?? '');
      const snapshotImage = parent?.result?.snapshotImage ?? '';
      expect(parent?.result?.diff).toContain('turn1.txt');
      // The result is out while the (held back) commit is still running.
      await expect(runtime.inspectImage(snapshotImage)).rejects.toThrow();

      const now = new Date().toISOString();
      const followUp = commandFollowUp(parent, 'cat turn1.txt', 'cat turn1.txt', now);
      await world.store.addFollowUpAttempt(followUp, now);
      expect((await queue.waitForTask(task.id)).status).toBe('succeeded');
      const turn = await world.store.getAttempt(followUp.id);
      expect(turn?.phase, JSON.stringify(turn?.error)).toBe('succeeded');
      expect(turn?.result?.commands[0]?.output).toContain('first turn');
      expect(await systemLog(followUp.id)).toContain(`waiting for the snapshot ${snapshotImage}`);
      await runtime.inspectImage(snapshotImage);
    } finally {
      await queue.stop();
    }
  });

  it('skips the fetch while the default branch is at the cache entry commit, and fetches once it moved', async () => {
    const queue = scheduler();
    await queue.start();
    try {
      const run = async (command: string) => {
        const { task, attempts } = await submitCommand(queue, world.environmentId, command);
        expect((await queue.waitForTask(task.id)).status).toBe('succeeded');
        const attempt = await world.store.getAttempt(attempts[0]?.id ?? '');
        return {
          commit: attempt?.result?.baseCommit,
          output: attempt?.result?.commands[0]?.output ?? '',
          log: await systemLog(attempts[0]?.id ?? ''),
        };
      };
      const cached = await run('git rev-parse --abbrev-ref HEAD; git status --porcelain');
      expect(cached.commit).toBe(world.repo.mainCommit);
      expect(cached.log).toContain("main is at the cache entry's commit");
      expect(cached.output.trim()).toBe('main');

      writeFileSync(join(world.repo.dir, 'later.txt'), 'added after the cache entry\n');
      git('add', 'later.txt');
      git('commit', '-qm', 'later');
      const moved = await run('cat later.txt; git rev-parse --abbrev-ref HEAD');
      expect(moved.commit).toBe(git('rev-parse', 'HEAD'));
      expect(moved.log).not.toContain("at the cache entry's commit");
      expect(moved.output).toContain('added after the cache entry');
      expect(moved.output).toContain('main');
    } finally {
      await queue.stop();
    }
  });

  it('keeps as many warm sandboxes as the last burst of attempts took, up to its cap', async () => {
    const owner = leaseOwnerId();
    const pool = new WarmPool(runtime, owner, { fillDelayMs: 0, maxPerKey: 3 });
    const spec: WarmSpec = {
      image: world.image,
      resources: { cpus: 1, memoryMb: 256, pids: 128 },
      workdir: '/workspace',
    };
    try {
      // A burst of four attempts found none ready; the pool then makes three (its cap).
      for (let i = 0; i < 4; i++) expect(pool.take(spec)).toBeUndefined();
      pool.fill(spec);
      for (let i = 0; i < 300 && pool.ready(spec) < 3; i++)
        await new Promise((resolve) => setTimeout(resolve, 100));
      expect(pool.ready(spec)).toBe(3);
      const taken = [pool.take(spec), pool.take(spec), pool.take(spec)];
      expect(new Set(taken).size).toBe(3);
      expect(pool.take(spec)).toBeUndefined();
      for (const id of taken) {
        expect(id).toBeDefined();
        await runtime.remove(id ?? '');
      }
    } finally {
      await pool.drain();
    }
    expect((await runtime.list({})).filter((s) => warmOwnerOf(s.name) === owner)).toEqual([]);
  });
});
