import { newId } from '../../src/domain/ids.js';
import type { Attempt, AttemptFollowUp } from '../../src/domain/task/attempt.js';

/** A follow-up turn (the task's second attempt, index 1) as it is added: queued, not started, no result. */
export function queuedFollowUp(fields: {
  id: string;
  taskId: string;
  createdAt: string;
  followUp: AttemptFollowUp;
}): Attempt {
  return {
    id: fields.id,
    taskId: fields.taskId,
    index: 1,
    phase: 'queued',
    cacheHit: null,
    error: null,
    result: null,
    followUp: fields.followUp,
    createdAt: fields.createdAt,
    startedAt: null,
    finishedAt: null,
  };
}

/**
 * The follow-up turn of the stored attempt `parent` that runs `command` (asked as `request`) from
 * the parent's snapshot, on the parent's base commit.
 */
export function commandFollowUp(
  parent: Attempt | undefined,
  request: string,
  command: string,
  createdAt: string,
): Attempt {
  return queuedFollowUp({
    id: newId('attempt'),
    taskId: parent?.taskId ?? '',
    createdAt,
    followUp: {
      parentAttemptId: parent?.id ?? '',
      request,
      prompt: '',
      command,
      snapshotImage: parent?.result?.snapshotImage ?? '',
      baseCommit: parent?.result?.baseCommit ?? '',
    },
  });
}
