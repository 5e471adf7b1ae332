import { describe, expect, it } from 'vitest';
import type { Attempt } from '../../src/domain/task/attempt.js';
import type { AttemptPhase } from '../../src/domain/task/attempt-phase.js';
import { taskStatusOfTurns } from '../../src/domain/task/task.js';

/**
 * A task's status follows its latest turn (docs/results.md "Task status"): the first turn is the
 * task's own attempts, each follow-up is a turn of its own.
 */

type Row = Pick<Attempt, 'index' | 'phase' | 'followUp'>;

const FOLLOW_UP = {
  parentAttemptId: 'att_parent',
  request: 'more',
  prompt: 'more',
  command: null,
  snapshotImage: 'berth-snapshot:x',
  baseCommit: 'a'.repeat(40),
};

/** The first turn's phases, then one follow-up per later phase. */
function task(first: AttemptPhase[], ...followUps: AttemptPhase[]): Row[] {
  return [
    ...first.map((phase, index) => ({ index, phase, followUp: null })),
    ...followUps.map((phase, i) => ({ index: first.length + i, phase, followUp: FOLLOW_UP })),
  ];
}

describe('task status from the latest turn', () => {
  it('without follow-ups: the first turn decides (succeeded only when every attempt did)', () => {
    expect(taskStatusOfTurns([])).toBe('queued');
    expect(taskStatusOfTurns(task(['queued', 'queued']))).toBe('queued');
    expect(taskStatusOfTurns(task(['agent', 'succeeded']))).toBe('running');
    expect(taskStatusOfTurns(task(['succeeded', 'succeeded']))).toBe('succeeded');
    expect(taskStatusOfTurns(task(['failed', 'succeeded']))).toBe('failed');
    expect(taskStatusOfTurns(task(['cancelled', 'cancelled']))).toBe('cancelled');
  });

  it('a succeeded follow-up makes the task succeeded although an earlier attempt failed', () => {
    // attempt 1 failed, attempt 2 (picked) succeeded, then a follow-up on it succeeded
    expect(taskStatusOfTurns(task(['failed', 'succeeded'], 'succeeded'))).toBe('succeeded');
    // a failed follow-up, then one that succeeded
    expect(taskStatusOfTurns(task(['succeeded'], 'failed', 'succeeded'))).toBe('succeeded');
  });

  it('a failed or cancelled follow-up makes the task failed or cancelled after earlier success', () => {
    expect(taskStatusOfTurns(task(['succeeded', 'succeeded'], 'failed'))).toBe('failed');
    expect(taskStatusOfTurns(task(['succeeded'], 'succeeded', 'failed'))).toBe('failed');
    expect(taskStatusOfTurns(task(['succeeded'], 'cancelled'))).toBe('cancelled');
  });

  it('a follow-up that is queued or running makes the task queued or running', () => {
    expect(taskStatusOfTurns(task(['succeeded'], 'queued'))).toBe('queued');
    expect(taskStatusOfTurns(task(['failed'], 'agent'))).toBe('running');
  });

  it('stays running while an attempt of an earlier turn is still live', () => {
    // best-of-2: the pick finished and was followed up while the other attempt still runs
    expect(taskStatusOfTurns(task(['succeeded', 'agent'], 'succeeded'))).toBe('running');
    expect(taskStatusOfTurns(task(['succeeded', 'queued'], 'failed'))).toBe('running');
  });

  it('orders turns by index, not by their order in the list', () => {
    const rows = task(['succeeded'], 'failed', 'succeeded').reverse();
    expect(taskStatusOfTurns(rows)).toBe('succeeded');
  });
});
