import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { STATUS_WORDS, STATUSES } from '../../src/domain/task/status-words.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import type { AttemptPhase } from '../../src/domain/task/attempt-phase.js';
import type { Task } from '../../src/domain/task/task.js';
import { taskView } from '../../src/server/task-views.js';
import { describeTask } from '../../src/cli/commands/task-command.js';
import { formatProgress } from '../../src/lifecycle/progress-format.js';
import {
  attemptView as attemptViewSchema,
  taskView as taskViewSchema,
} from '../../src/server/api-schemas.js';

/** One set of status words: the docs' table, the API's enum and the CLI's lines (issue 20 item 3). */

const T0 = '2026-01-01T00:00:00.000Z';

function task(status: Task['status'], phases: AttemptPhase[]) {
  const t: Task = {
    id: 'task_1',
    environmentId: 'env_1',
    prompt: '',
    command: 'sleep 300',
    ref: {},
    repository: null,
    attemptCount: phases.length,
    status,
    createdAt: T0,
    updatedAt: T0,
  };
  const attempts: Attempt[] = phases.map((phase, index) => ({
    id: `att_${index}`,
    taskId: t.id,
    index,
    phase,
    cacheHit: null,
    error:
      phase === 'cancelled'
        ? { code: 'cancelled', message: 'the attempt was cancelled during agent', details: {} }
        : null,
    result: null,
    createdAt: T0,
    startedAt: null,
    finishedAt: null,
  }));
  return taskView(t, 'svc', attempts);
}

describe('status words', () => {
  it('docs/lifecycle.md "Status words" lists exactly the words and meanings of the code', () => {
    const doc = readFileSync(new URL('../../docs/lifecycle.md', import.meta.url), 'utf8');
    const section = doc.split('### Status words')[1]?.split('\n#')[0] ?? '';
    const rows = [...section.matchAll(/^\| `(\w+)` +\| (.+?) +\|$/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(Object.entries(STATUS_WORDS));
  });

  it('the API offers exactly these words for a task and an attempt', () => {
    expect(taskViewSchema.shape.status.options).toEqual(STATUSES);
    expect(attemptViewSchema.shape.status.options).toEqual(STATUSES);
  });

  it('a task whose attempt has left the queue is running, whatever status was stored', () => {
    for (const phase of ['creating', 'setup', 'agent', 'results'] as const) {
      expect(task('queued', [phase]).status).toBe('running');
    }
    expect(task('running', ['queued']).status).toBe('queued');
    expect(task('running', ['cancelled']).status).toBe('cancelled');
  });

  it('task show says a cancelled attempt is cancelled, not failed', () => {
    const view = task('cancelled', ['cancelled']);
    const text = describeTask(view);
    expect(text).toMatch(/^task task_1: cancelled$/m);
    expect(text).toContain('att_0 cancelled: the attempt was cancelled during agent');
    expect(text).not.toMatch(/failed/);
  });

  it('the progress of a cancelled attempt says cancelled, not error', () => {
    const line = formatProgress(
      {
        type: 'error',
        code: 'cancelled',
        message: 'the attempt was cancelled during agent',
        attemptId: 'att_0',
        seq: 9,
        at: T0,
      },
      '',
    );
    expect(line).toBe('cancelled: the attempt was cancelled during agent\n');
  });
});
