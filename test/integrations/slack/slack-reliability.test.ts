import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOT_USER, blockText, deliver, eventCallback, mentionEvent } from './fake-slack.js';
import { ALICE, CHANNEL, startSlackWorld, type SlackWorld } from './slack-world.js';

/**
 * Slack's Web API failing: a 429 with Retry-After is waited out and retried; retries are bounded
 * (3 here); when Slack cannot be reached as a task ends, the task's result is unaffected and the
 * reply is logged as undelivered once the retries are spent.
 */

let world: SlackWorld;

beforeAll(async () => {
  world = await startSlackWorld({ mode: 'http', tuning: { retries: 3, maxRetryTimeMs: 8_000 } });
});
afterAll(async () => {
  await world?.close();
});

const posts = (threadTs: string) =>
  world.slack.calls.filter((c) => c.method === 'chat.postMessage' && c.args.thread_ts === threadTs);

describe('Web API failures', () => {
  it('honours 429 Retry-After: the reply is posted after the pause', async () => {
    const { slack } = world;
    slack.rateLimit.set('chat.postMessage', 1);
    const mention = mentionEvent(CHANNEL, ALICE, `<@${BOT_USER}> fix it`);
    const ts = mention.ts as string;
    await deliver(world.url, eventCallback(mention));
    await slack.until(() => slack.thread(CHANNEL, ts).length > 0);
    const [limited, retried] = posts(ts);
    expect(retried).toBeDefined();
    // Retry-After: 1 (second) was waited out.
    expect((retried?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(950);
    await slack.until(() =>
      slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('*Succeeded*')),
    );
  });

  it('gives up after the bounded retries and logs the reply as undelivered; the task is unaffected', async () => {
    const { slack } = world;
    const mention = mentionEvent(CHANNEL, ALICE, `<@${BOT_USER}> fix it again`);
    const ts = mention.ts as string;
    await deliver(world.url, eventCallback(mention));
    const [reply] = await slack.until(
      () => slack.thread(CHANNEL, ts).length > 0 && slack.thread(CHANNEL, ts),
    );
    const taskId = /task_[A-Za-z0-9]+/.exec(reply?.text ?? '')?.[0] ?? '';
    slack.down = true;
    const line = await slack.until(
      () =>
        world.logs.find(
          (l) =>
            l.includes('slack reply undelivered') &&
            l.includes(taskId) &&
            l.includes('chat.postMessage'),
        ),
      20_000,
    );
    expect(line).toContain(CHANNEL);
    // 1 call and 3 retries for the final message, no more.
    await new Promise((r) => setTimeout(r, 1000));
    expect(posts(ts).length).toBe(1 + 4);
    const task = await world.store.getTask(taskId);
    expect(task?.status).toBe('succeeded');
    slack.down = false;
  }, 30_000);
});
