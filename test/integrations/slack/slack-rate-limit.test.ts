import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOT_USER, blockText, deliver, eventCallback, mentionEvent } from './fake-slack.js';
import { ALICE, CHANNEL, startSlackWorld, type SlackWorld } from './slack-world.js';

/**
 * A 429 with a long Retry-After (review 3): it holds back only the call it answered, which waits
 * min(Retry-After, rateLimitWaitMaxMs) and is tried at most rateLimitTries times in all; every
 * other Slack call goes on meanwhile (@slack/web-api on its own would pause its whole queue for
 * the full Retry-After). Here Retry-After is 30 s and the cap 1.5 s.
 */

let world: SlackWorld;
beforeAll(async () => {
  world = await startSlackWorld({
    mode: 'http',
    tuning: { retries: 3, maxRetryTimeMs: 5_000, rateLimitTries: 3, rateLimitWaitMaxMs: 1_500 },
  });
  world.slack.retryAfterS = 30;
});
afterAll(async () => {
  await world?.close();
});

const posts = (threadTs: string) =>
  world.slack.calls.filter((c) => c.method === 'chat.postMessage' && c.args.thread_ts === threadTs);

async function mention(text: string): Promise<string> {
  const event = mentionEvent(CHANNEL, ALICE, `<@${BOT_USER}> ${text}`);
  expect((await deliver(world.url, eventCallback(event))).status).toBe(200);
  return event.ts as string;
}

describe('Slack rate limits', () => {
  it("one call's long Retry-After delays neither other threads nor the call past the cap", async () => {
    const { slack } = world;
    slack.rateLimit.set('chat.postMessage', 1);
    const first = await mention('first task');
    await slack.until(() => posts(first).length > 0);
    const second = await mention('second, unrelated task');
    // The other thread is answered while the limited call waits.
    await slack.until(() => slack.thread(CHANNEL, second).length > 0);
    // The limited call is tried again after the cap, not after 30 s, and delivered.
    await slack.until(() => slack.thread(CHANNEL, first).length > 0);
    const [limited, retried] = posts(first);
    expect(retried).toBeDefined();
    expect(posts(second)[0]!.at).toBeLessThan(retried!.at);
    expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(1_400);
    for (const ts of [first, second])
      await slack.until(() =>
        slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('*Succeeded*')),
      );
  });

  it('gives a call up after rateLimitTries 429 answers and logs it as undelivered', async () => {
    const { slack } = world;
    // A user linked to no token: the one answer is an ephemeral refusal, one call.
    slack.rateLimit.set('chat.postEphemeral', 5);
    const event = mentionEvent(CHANNEL, 'U0MALLORY', `<@${BOT_USER}> do something`);
    expect((await deliver(world.url, eventCallback(event))).status).toBe(200);
    const line = await slack.until(() =>
      world.logs.find(
        (l) => l.includes('slack reply undelivered') && l.includes('chat.postEphemeral'),
      ),
    );
    expect(line).toMatch(/rate/i);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(slack.calls.filter((c) => c.method === 'chat.postEphemeral')).toHaveLength(3);
    expect(slack.rateLimit.get('chat.postEphemeral')).toBe(2);
  });
});
