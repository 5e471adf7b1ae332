import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectInertPullBody } from '../../support/inert-pull-body.js';
import {
  BOT_USER,
  blockText,
  buttonPayload,
  deliver,
  eventCallback,
  mentionEvent,
  signedHeaders,
  type PostedMessage,
} from './fake-slack.js';
import {
  ALICE,
  CHANNEL,
  HOSTILE_SUMMARY,
  startSlackWorld,
  type SlackWorld,
} from './slack-world.js';

/**
 * The final message's buttons against hostile input (review 3): "Create pull request" makes a
 * pull request whose body holds the agent's final message inert (no mention, closing keyword,
 * HTML or image acts), and a captured signed button press sent again, within the signature's
 * 5 minutes, is not acted on again, also after a restart (the store remembers the press).
 */

let world: SlackWorld;
beforeAll(async () => {
  world = await startSlackWorld({ mode: 'http' });
});
afterAll(async () => {
  await world?.close();
});

const buttons = (m: PostedMessage | undefined) =>
  (m?.blocks ?? [])
    .filter((b) => b.type === 'actions')
    .flatMap((b) => b.elements as { action_id: string; value?: string; text: { text: string } }[]);

async function runTask(prompt: string) {
  const { slack } = world;
  const mention = mentionEvent(CHANNEL, ALICE, `<@${BOT_USER}> ${prompt}`);
  const ts = mention.ts as string;
  expect((await deliver(world.url, eventCallback(mention))).status).toBe(200);
  const final = await slack.until(() =>
    slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('*Succeeded*')),
  );
  const create = buttons(final).find((b) => b.text.text === 'Create pull request');
  expect(create).toBeDefined();
  return { ts, final, create: create! };
}

const prReplies = (ts: string) =>
  world.slack
    .thread(CHANNEL, ts)
    .map((m) => blockText(m.blocks))
    .filter((t) => t.includes('Pull request'));

describe('Slack buttons against hostile input', () => {
  it("makes the pull request's body inert: the agent's final message is in a code block", async () => {
    const { ts, final, create } = await runTask('fix the adder (hostile summary)');
    const before = world.github.pulls.length;
    const r = await deliver(
      world.url,
      buttonPayload(ALICE, final, create.action_id, create.value ?? ''),
      { form: true },
    );
    expect(r.status).toBe(200);
    await world.slack.until(() => prReplies(ts).length > 0);
    expect(world.github.pulls.length).toBe(before + 1);
    const pull = world.github.pulls.at(-1) as unknown as { body: string };
    expectInertPullBody(pull.body.split('\n---\n')[0] ?? '', HOSTILE_SUMMARY);
    expect(pull.body).toMatch(/\n---\nMade by Berth: task task_[A-Za-z0-9]+, attempt /);
  });

  it('ignores a replayed signed button press, also after a restart; a new press is acted on', async () => {
    const { slack } = world;
    const { ts, final, create } = await runTask('fix the adder for the replay');
    // One signed request, captured: the same bytes and headers (within the 5 minutes).
    const text = `payload=${encodeURIComponent(
      JSON.stringify(buttonPayload(ALICE, final, create.action_id, create.value ?? '')),
    )}`;
    const headers = { 'content-type': 'application/x-www-form-urlencoded', ...signedHeaders(text) };
    const send = () =>
      fetch(`${world.url}/v1/integrations/slack/events`, { method: 'POST', headers, body: text });
    expect((await send()).status).toBe(200);
    await slack.until(() => prReplies(ts).length > 0);
    const pushes = world.github.requests.length;
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(200);
    await world.restart();
    expect((await send()).status).toBe(200);
    // A press by a person (a new interaction, its own trigger_id) is acted on: "updated".
    const again = buttonPayload(ALICE, final, create.action_id, create.value ?? '');
    expect((await deliver(world.url, again, { form: true })).status).toBe(200);
    await slack.until(() => prReplies(ts).length > 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const replies = prReplies(ts);
    expect(replies).toHaveLength(2);
    expect(replies[0]).toContain('opened');
    expect(replies[1]).toContain('updated');
    // Only the new press reached GitHub after the first.
    expect(world.github.requests.length).toBeGreaterThan(pushes);
    expect(world.logs.filter((l) => l.includes('slack button press already handled'))).toHaveLength(
      3,
    );
  });
});
