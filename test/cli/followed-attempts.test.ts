import { describe, expect, it } from 'vitest';
import { attemptPrefix, followedAttempts, wholeLines } from '../../src/cli/followed-attempts.js';
import { formatProgress } from '../../src/lifecycle/progress-format.js';
import type { AttemptEvent } from '../../src/domain/task/attempt-event.js';
import type { AttemptViewBody, TaskViewBody } from '../../src/server/api-schemas.js';

/** Which attempts `task logs TASK [--follow]` shows without --attempt (issue 20 item 4). */

function attempt(
  index: number,
  status: AttemptViewBody['status'],
  followUpOf: string | null = null,
): AttemptViewBody {
  return { id: `att_${index}`, index, status, followUpOf } as AttemptViewBody;
}

function ids(attempts: AttemptViewBody[]): string[] {
  return followedAttempts({ attempts } as TaskViewBody).map((a) => a.id);
}

describe('followedAttempts', () => {
  it("a lone attempt, or every one of the task's own attempts", () => {
    expect(ids([attempt(0, 'running')])).toEqual(['att_0']);
    expect(ids([attempt(0, 'succeeded'), attempt(1, 'running'), attempt(2, 'queued')])).toEqual([
      'att_0',
      'att_1',
      'att_2',
    ]);
  });

  it('the latest follow-up turn, not the first attempt', () => {
    expect(
      ids([
        attempt(0, 'succeeded'),
        attempt(1, 'succeeded', 'att_0'),
        attempt(2, 'running', 'att_1'),
      ]),
    ).toEqual(['att_2']);
  });

  it('with an earlier attempt still running, that one too', () => {
    expect(
      ids([attempt(0, 'succeeded'), attempt(1, 'running'), attempt(2, 'queued', 'att_0')]),
    ).toEqual(['att_1', 'att_2']);
  });
});

describe('several attempts printed together', () => {
  const log = (attemptId: string, text: string): AttemptEvent => ({
    type: 'log',
    stream: 'stdout',
    text,
    attemptId,
    seq: 1,
    at: '2026-01-01T00:00:00.000Z',
  });

  it('keeps each line whole and prefixed, whatever the chunks', () => {
    const a = { id: 'att_a', lines: wholeLines() };
    const b = { id: 'att_b', lines: wholeLines() };
    let out = '';
    const print = (who: typeof a, event: AttemptEvent) => {
      for (const e of who.lines.push(event)) out += formatProgress(e, attemptPrefix(who, true));
    };
    print(a, log('att_a', '12'));
    print(b, log('att_b', 'x\ny'));
    print(a, log('att_a', '34\n56'));
    print(b, log('att_b', 'z\n'));
    print(a, { ...log('att_a', ''), type: 'phase', phase: 'results' });
    for (const e of b.lines.flush()) out += formatProgress(e, '[att_b] ');
    expect(out).toBe('[att_b] x\n[att_a] 1234\n[att_b] yz\n[att_a] 56\n[att_a] == results\n');
  });
});
