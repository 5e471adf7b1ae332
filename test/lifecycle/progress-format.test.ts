import { describe, expect, it } from 'vitest';
import { formatProgress } from '../../src/lifecycle/progress-format.js';
import type { AttemptEvent } from '../../src/domain/task/attempt-event.js';

describe('progress lines of a failure (issue 20 item 12: the failing output once)', () => {
  const failure = (details: Record<string, unknown>): AttemptEvent => ({
    type: 'error',
    code: 'task_failed',
    message: 'setup script failed at line 3: `false` exited with code 1',
    details,
  });

  it('leaves out the tail of a script whose output the log showed as it ran', () => {
    expect(formatProgress(failure({ logTail: 'about-to-fail', logShown: true }), '')).toBe(
      'error: setup script failed at line 3: `false` exited with code 1\n',
    );
  });

  it('shows the tail of a log that was not streamed (a service’s)', () => {
    expect(formatProgress(failure({ logTail: 'bound to nothing' }), '[a] ')).toBe(
      '[a] error: setup script failed at line 3: `false` exited with code 1\n[a]   bound to nothing\n',
    );
  });
});
