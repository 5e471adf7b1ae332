import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import type { AttemptUsage } from '../../src/domain/usage/attempt-usage.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import type { Store } from '../../src/ports/store.js';
import { checkBudgets } from '../../src/usage/budget-check.js';
import { describeEachStore } from './each-store.js';

/**
 * Attempts' usage (migration 0018_usage) on each store, SQLite and a real PostgreSQL: known
 * figures in, their sums by environment, token and UTC day out (PostgreSQL answers sums of
 * bigint columns as text: they must come back as numbers), and the daily budgets read from them.
 */

function usage(
  attemptId: string,
  environmentId: string,
  createdBy: string | null,
  finishedAt: string,
  figures: Partial<AttemptUsage> = {},
): AttemptUsage {
  return {
    attemptId,
    taskId: `task_${attemptId}`,
    environmentId,
    createdBy,
    finishedAt,
    inputTokens: 0,
    outputTokens: 0,
    cpuSeconds: null,
    peakMemoryBytes: null,
    wallMs: 0,
    ...figures,
  };
}

describeEachStore('attempt usage', (adapter, open) => {
  describe(`attempt usage: ${adapter}`, () => {
    let store: Store;
    let cleanup: () => void;
    beforeEach(async () => {
      ({ store, cleanup } = await open());
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
      cleanup();
    });

    it('adds known figures up by environment, token and day, within [from, to)', async () => {
      const GB = 1024 ** 3;
      await store.recordAttemptUsage(
        usage('a1', 'env_a', 'alice', '2026-03-01T10:00:00.000Z', {
          inputTokens: 1000,
          outputTokens: 200,
          cpuSeconds: 1.25,
          peakMemoryBytes: 3 * GB,
          wallMs: 60_000,
        }),
      );
      await store.recordAttemptUsage(
        usage('a2', 'env_a', 'bob', '2026-03-02T23:59:59.999Z', {
          inputTokens: 3_000_000_000,
          outputTokens: 5,
          cpuSeconds: 0.5,
          peakMemoryBytes: 5 * GB,
          wallMs: 1500,
        }),
      );
      await store.recordAttemptUsage(
        usage('b1', 'env_b', null, '2026-03-02T00:00:00.000Z', { wallMs: 250 }),
      );
      // Outside the range.
      await store.recordAttemptUsage(
        usage('old', 'env_a', 'alice', '2026-02-28T23:59:59.999Z', { inputTokens: 7 }),
      );
      // Recorded again: replaced, not added.
      await store.recordAttemptUsage(
        usage('a1', 'env_a', 'alice', '2026-03-01T10:00:00.000Z', {
          inputTokens: 1000,
          outputTokens: 200,
          cpuSeconds: 1.25,
          peakMemoryBytes: 3 * GB,
          wallMs: 60_000,
        }),
      );
      const range = { from: '2026-03-01T00:00:00.000Z', to: '2026-03-03T00:00:00.000Z' };

      expect(await store.summarizeUsage({ ...range, by: 'environment' })).toEqual([
        {
          key: 'env_a',
          attempts: 2,
          inputTokens: 3_000_001_000,
          outputTokens: 205,
          cpuSeconds: 1.75,
          peakMemoryBytes: 5 * GB,
          wallSeconds: 61.5,
        },
        {
          key: 'env_b',
          attempts: 1,
          inputTokens: 0,
          outputTokens: 0,
          cpuSeconds: 0,
          peakMemoryBytes: 0,
          wallSeconds: 0.25,
        },
      ]);
      const byToken = await store.summarizeUsage({ ...range, by: 'token' });
      expect(byToken.map((g) => [g.key, g.attempts, g.inputTokens])).toEqual(
        expect.arrayContaining([
          ['alice', 1, 1000],
          ['bob', 1, 3_000_000_000],
          ['(unknown)', 1, 0],
        ]),
      );
      expect(byToken).toHaveLength(3);
      const byDay = await store.summarizeUsage({ ...range, by: 'day' });
      expect(byDay.map((g) => [g.key, g.attempts])).toEqual([
        ['2026-03-01', 1],
        ['2026-03-02', 2],
      ]);
      const onlyB = await store.summarizeUsage({
        ...range,
        by: 'token',
        environmentIds: ['env_b'],
      });
      expect(onlyB.map((g) => g.key)).toEqual(['(unknown)']);
      expect(await store.summarizeUsage({ ...range, by: 'day', environmentIds: [] })).toEqual([]);
      expect(await store.getAttemptUsage('a2')).toMatchObject({
        inputTokens: 3_000_000_000,
        cpuSeconds: 0.5,
        peakMemoryBytes: 5 * GB,
      });
      expect(await store.tokensUsedSince('env_a', '2026-03-02T00:00:00.000Z')).toBe(3_000_000_005);
    });

    it('refuses a task once the day reached tokensPerDay or its attempts would pass attemptsPerDay', async () => {
      const environment = await store.createEnvironment({
        id: 'env_budget',
        spec: parseEnvironmentSpec({
          name: 'budget',
          repository: 'https://git.example/acme/app.git',
          limits: { tokensPerDay: 1000, attemptsPerDay: 3 },
        }),
        createdByTokenId: null,
        secrets: [],
        now: '2026-03-01T00:00:00.000Z',
      });
      const now = new Date('2026-03-02T12:00:00.000Z');
      // Yesterday's tokens do not count; today's 999 leave room.
      await store.recordAttemptUsage(
        usage('y', environment.id, null, '2026-03-01T23:00:00.000Z', { inputTokens: 5000 }),
      );
      await store.recordAttemptUsage(
        usage('t', environment.id, null, '2026-03-02T01:00:00.000Z', {
          inputTokens: 900,
          outputTokens: 99,
        }),
      );
      await checkBudgets(store, environment, 1, now);
      await store.recordAttemptUsage(
        usage('t2', environment.id, null, '2026-03-02T02:00:00.000Z', { outputTokens: 1 }),
      );
      await expect(checkBudgets(store, environment, 1, now)).rejects.toMatchObject({
        code: 'limit_reached',
        details: { limit: 'tokensPerDay', used: 1000, allowed: 1000 },
      });

      // attemptsPerDay counts the environment's attempts created today, whatever their phase.
      const other = await store.createEnvironment({
        id: 'env_attempts',
        spec: parseEnvironmentSpec({
          name: 'attempts',
          repository: 'https://git.example/acme/app.git',
          limits: { attemptsPerDay: 3 },
        }),
        createdByTokenId: null,
        secrets: [],
        now: '2026-03-01T00:00:00.000Z',
      });
      const attempt = (id: string, taskId: string, createdAt: string): Attempt => ({
        id,
        taskId,
        index: 0,
        phase: 'queued',
        cacheHit: null,
        error: null,
        result: null,
        createdAt,
        startedAt: null,
        finishedAt: null,
      });
      const task = (id: string, createdAt: string) => ({
        id,
        environmentId: other.id,
        prompt: '',
        command: 'true',
        ref: {},
        repository: null,
        attemptCount: 1,
        status: 'queued' as const,
        createdAt,
        updatedAt: createdAt,
      });
      await store.createTask(task('task_y', '2026-03-01T22:00:00.000Z'), [
        attempt('att_y1', 'task_y', '2026-03-01T22:00:00.000Z'),
        attempt('att_y2', 'task_y', '2026-03-01T22:00:00.000Z'),
      ]);
      await store.createTask(task('task_t', '2026-03-02T08:00:00.000Z'), [
        attempt('att_t1', 'task_t', '2026-03-02T08:00:00.000Z'),
        attempt('att_t2', 'task_t', '2026-03-02T08:00:00.000Z'),
      ]);
      expect(await store.attemptsCreatedSince(other.id, '2026-03-02T00:00:00.000Z')).toBe(2);
      await checkBudgets(store, other, 1, now);
      await expect(checkBudgets(store, other, 2, now)).rejects.toMatchObject({
        code: 'limit_reached',
        details: { limit: 'attemptsPerDay', used: 2, requested: 2, allowed: 3 },
      });
    });
  });
});
