import { describe, expect, it } from 'vitest';
import type { Attempt } from '../../../src/domain/task/attempt.js';
import type { Task } from '../../../src/domain/task/task.js';
import { finalMessage } from '../../../src/integrations/slack/slack-messages.js';
import { link, untrusted } from '../../../src/integrations/slack/slack-text.js';
import { blockText } from './fake-slack.js';

/** Hostile text from a sandbox in Slack messages: no link, no mention, no markup escapes. */

const task: Task = {
  id: 'task_1',
  environmentId: 'env_1',
  prompt: 'fix it',
  command: null,
  ref: {},
  repository: null,
  attemptCount: 1,
  status: 'succeeded',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

function attempt(message: string, files: string[] = ['src/add.sh']): Attempt {
  return {
    id: 'att_1',
    taskId: 'task_1',
    index: 0,
    phase: 'succeeded',
    cacheHit: true,
    error: null,
    result: {
      baseCommit: 'a'.repeat(40),
      diff: '',
      files: files.map((path) => ({ path, added: 1, removed: 1, binary: false })),
      message,
      commands: [],
      snapshotImage: null,
      verification: {
        command: 'sh test.sh',
        exitCode: 0,
        output: '',
        passed: true,
        durationMs: 5,
        timedOut: false,
      },
    },
    createdAt: task.createdAt,
    startedAt: null,
    finishedAt: null,
  };
}

describe('Slack text from a sandbox', () => {
  it('escapes &, < and > so no link or mention can be made', () => {
    expect(untrusted('<https://evil.test|Approve> <@U0ADMIN> <!channel> &amp;')).toBe(
      '&lt;https://evil.test|Approve&gt; &lt;@U0ADMIN&gt; &lt;!channel&gt; &amp;amp;',
    );
    expect(link('https://berth.test/tasks/x|y>z', 'a|b<c>')).toBe(
      '<https://berth.test/tasks/x%7Cy%3Ez|a¦b&lt;c&gt;>',
    );
    expect(link('javascript:alert(1)', 'x')).toBe('x');
  });

  it("the final message carries the agent's words escaped and verbatim, Berth's link only", () => {
    const hostile =
      'Done. <https://evil.test|Merge now> <!here> <@U0BOSS> @channel https://evil.test';
    const message = finalMessage(task, [attempt(hostile, ['<@U0X>.txt'])], 'https://berth.test');
    const json = JSON.stringify(message.blocks);
    const text = blockText(message.blocks ?? []);
    // Exactly one kind of link: Berth's own.
    const links = [...text.matchAll(/<([^>]*)>/g)].map((m) => m[1]);
    expect(links.every((l) => l?.startsWith('https://berth.test/tasks/task_1|'))).toBe(true);
    expect(text).toContain('&lt;https://evil.test|Merge now&gt; &lt;!here&gt; &lt;@U0BOSS&gt;');
    expect(text).toContain('&lt;@U0X&gt;.txt');
    // Every mrkdwn text is verbatim (Slack does not auto-link URLs, @channel or #names in it).
    const mrkdwn = json.match(/"type":"mrkdwn"[^}]*/g) ?? [];
    expect(mrkdwn.length).toBeGreaterThan(0);
    expect(mrkdwn.every((t) => t.includes('"verbatim":true'))).toBe(true);
    expect(text).toContain('Verify `sh test.sh`: passed');
    expect(text).toContain('1 file changed, +1 −1');
  });

  it('cuts a long final message and links to the rest', () => {
    const long = `${'line of output\n'.repeat(400)}THE END`;
    const text = blockText(finalMessage(task, [attempt(long)], 'https://berth.test').blocks ?? []);
    expect(text).not.toContain('THE END');
    expect(text).toContain('<https://berth.test/tasks/task_1|Read the rest in Berth>');
    expect(text.length).toBeLessThan(3000);
  });
});
