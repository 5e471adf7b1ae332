import type { AttemptViewBody, TaskViewBody } from '../server/api-schemas.js';
import { isFinalStatus } from '../domain/task/status-words.js';
import type { AttemptEvent } from '../domain/task/attempt-event.js';

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

/**
 * Log text of one attempt, given back in whole lines: with several attempts printed together a
 * chunk that ends inside a line would be continued by another attempt's line (and the rest of
 * it prefixed again). Each stream's unfinished line is held until its line end, or until another
 * kind of event (or the end: `flush`) comes.
 */
export interface WholeLines {
  push(event: AttemptEvent): AttemptEvent[];
  flush(): AttemptEvent[];
}

export function wholeLines(): WholeLines {
  const held = new Map<string, AttemptEvent & { type: 'log' }>();
  const release = (): AttemptEvent[] => {
    const out = [...held.values()].map((event) => ({ ...event, text: `${event.text}\n` }));
    held.clear();
    return out;
  };
  return {
    push(event) {
      if (event.type !== 'log') return [...release(), event];
      const before = held.get(event.stream);
      const text = (before?.text ?? '') + event.text;
      const end = text.lastIndexOf('\n') + 1;
      if (end < text.length) held.set(event.stream, { ...event, text: text.slice(end) });
      else held.delete(event.stream);
      return end > 0 ? [{ ...event, text: text.slice(0, end) }] : [];
    },
    flush: release,
  };
}
