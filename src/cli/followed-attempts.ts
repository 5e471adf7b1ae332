import type { AttemptViewBody, TaskViewBody } from '../server/api-schemas.js';
import { isFinalStatus } from '../domain/task/status-words.js';

/**
 * Which attempts `berth task logs TASK` shows (and `--follow` follows) when `--attempt` does not
 * pick one: the latest turn (the last follow-up, else the task's own attempts), so the attempt
 * that is running or was last started, plus any earlier attempt still running. With several,
 * each line is prefixed with its attempt (`[att_…] `).
 */
export function followedAttempts(task: TaskViewBody): AttemptViewBody[] {
  const followUps = task.attempts.filter((a) => a.followUpOf !== null);
  const latest = followUps.reduce<AttemptViewBody | undefined>(
    (last, a) => (last === undefined || a.index > last.index ? a : last),
    undefined,
  );
  const turn = latest ? [latest] : task.attempts.filter((a) => a.followUpOf === null);
  const live = task.attempts.filter((a) => !turn.includes(a) && !isFinalStatus(a.status));
  return [...live, ...turn].sort((a, b) => a.index - b.index);
}

/** The prefix of an attempt's lines when several are shown together. */
export function attemptPrefix(attempt: Pick<AttemptViewBody, 'id'>, several: boolean): string {
  return several ? `[${attempt.id}] ` : '';
}
