import { describe, expect, it } from 'vitest';
import { followedAttempts } from '../../src/cli/followed-attempts.js';
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
