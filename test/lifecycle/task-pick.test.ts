import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/ports/store.js';
import { describeEachStore } from '../store/each-store.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import type { AttemptPhase } from '../../src/domain/task/attempt-phase.js';
import type { Task } from '../../src/domain/task/task.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { pickedAttempt, taskView } from '../../src/server/task-views.js';
import { TaskService } from '../../src/services/task-service.js';
import { queuedFollowUp } from '../support/follow-up-attempt.js';

/**
 * Picking an attempt and adding a follow-up turn: the store columns (migrations 0003, 0004) on
 * SQLite and PostgreSQL, the service's rules, the view.
 */

const T0 = '2026-01-01T00:00:00.000Z';
const ADMIN = { tokenId: 'tok_admin', tokenName: 'admin', admin: true };

let store: Store;
let service: TaskService;

async function makeTask(id: string, phases: AttemptPhase[]): Promise<void> {
  const task: Task = {
    id,
    environmentId: 'env_1',
    prompt: 'fix it',
    command: null,
    ref: {},
    repository: null,
    attemptCount: phases.length,
    status: 'failed',
    createdAt: T0,
    updatedAt: T0,
  };
  const attempts: Attempt[] = phases.map((phase, index) => ({
    id: `att_${id}_${index}`,
    taskId: id,
    index,
    phase,
    cacheHit: true,
    error:
      phase === 'failed' ? { code: 'task_failed', message: 'tests failed', details: {} } : null,
    result: null,
    createdAt: T0,
    startedAt: null,
    finishedAt: null,
  }));
  await store.createTask(task, attempts);
}

function describePicking(
  adapter: string,
  open: () => Promise<{ store: Store; cleanup: () => void }>,
): void {
  describe(`picking and follow-ups: ${adapter}`, () => {
    let cleanup: () => void;
    beforeEach(async () => {
      ({ store, cleanup } = await open());
      await store.migrate();
      await store.createEnvironment({
        id: 'env_1',
        spec: { name: 'svc', members: [] } as never,
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      service = new TaskService({
        store,
        runner: {
          submit: () => Promise.reject(new Error('not used')),
          cancel: () => Promise.resolve(),
          subscribe: () => () => undefined,
        },
        resetCache: () => Promise.resolve(0),
        agentAvailable: false,
        agentUnavailableReason: 'no model',
      });
    });
    afterEach(async () => {
      await store.close();
      cleanup();
    });

    it('a lone attempt is picked already; among several none is until one is picked', async () => {
      await makeTask('task_one', ['succeeded']);
      await makeTask('task_three', ['succeeded', 'failed', 'succeeded']);
      const one = await service.get(ADMIN, 'task_one');
      expect(pickedAttempt(one.task, one.attempts)).toBe('att_task_one_0');
      const three = await service.get(ADMIN, 'task_three');
      expect(taskView(three.task, 'svc', three.attempts).picked).toBeNull();

      const { detail, warning } = await service.pick(ADMIN, 'task_three', 'att_task_three_2');
      expect(warning).toBeNull();
      expect(taskView(detail.task, 'svc', detail.attempts).picked).toBe('att_task_three_2');
      // Stored: a fresh read (and the default attempt for diff/apply/pr) is the pick.
      expect((await store.getTask('task_three'))?.pickedAttemptId).toBe('att_task_three_2');
      expect((await service.attempt(ADMIN, 'task_three')).attempt.id).toBe('att_task_three_2');
    });

    it('picks a failed attempt with a warning, refuses an unknown or unfinished one', async () => {
      await makeTask('task_mix', ['failed', 'agent']);
      const failed = await service.pick(ADMIN, 'task_mix', 'att_task_mix_0');
      expect(failed.warning).toContain('failed (tests failed)');
      expect(failed.detail.task.pickedAttemptId).toBe('att_task_mix_0');

      const unknown = await service.pick(ADMIN, 'task_mix', 'att_nope').catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(BerthError);
      expect((unknown as BerthError).code).toBe('not_found');
      expect((unknown as BerthError).message).toContain('att_task_mix_0, att_task_mix_1');

      const running = await service
        .pick(ADMIN, 'task_mix', 'att_task_mix_1')
        .catch((e: unknown) => e);
      expect((running as BerthError).code).toBe('conflict');
      expect((await store.getTask('task_mix'))?.pickedAttemptId).toBe('att_task_mix_0');
    });

    it('adds a follow-up turn in one step: stored with its origin, picked, the task running again', async () => {
      await makeTask('task_fu', ['succeeded']);
      await store.addFollowUpAttempt(
        queuedFollowUp({
          id: 'att_task_fu_1',
          taskId: 'task_fu',
          createdAt: T0,
          followUp: {
            parentAttemptId: 'att_task_fu_0',
            request: 'also add tests',
            prompt: 'Earlier… Follow-up request: also add tests',
            command: null,
            snapshotImage: 'berth-snapshot:att-task-fu-0',
            baseCommit: 'a'.repeat(40),
          },
        }),
        T0,
      );
      const detail = await service.get(ADMIN, 'task_fu');
      expect(detail.task).toMatchObject({ pickedAttemptId: 'att_task_fu_1', status: 'running' });
      expect(detail.attempts.map((a) => a.followUp?.parentAttemptId ?? null)).toEqual([
        null,
        'att_task_fu_0',
      ]);
      const view = taskView(detail.task, 'svc', detail.attempts);
      expect(view.attempts[1]).toMatchObject({
        followUpOf: 'att_task_fu_0',
        request: 'also add tests',
        turnDiff: null,
      });
    });
  });
}

describeEachStore('picking and follow-ups', describePicking);
