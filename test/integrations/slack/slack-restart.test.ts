import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOT_USER, blockText, deliver, eventCallback, mentionEvent } from './fake-slack.js';
import { ALICE, CHANNEL, startSlackWorld, type SlackWorld } from './slack-world.js';

/**
 * A restart while a task runs: the new server follows the turns the stopped one had open (their
 * final message not posted yet), so the thread still gets its edits and the final message.
 */

let world: SlackWorld;

beforeAll(async () => {
  world = await startSlackWorld({ mode: 'http' });
});
afterAll(async () => {
  await world?.close();
});

describe('a restart in the middle of a conversation', () => {
  it('the restarted server edits the progress reply and posts the final message', async () => {
    const { slack } = world;
    const mention = mentionEvent(CHANNEL, ALICE, `<@${BOT_USER}> fix it slowly`);
    const ts = mention.ts as string;
    await deliver(world.url, eventCallback(mention));
    const [reply] = await slack.until(
      () => slack.thread(CHANNEL, ts).length > 0 && slack.thread(CHANNEL, ts),
    );
    // The turn is recorded right after the reply is posted.
    for (let i = 0; i < 50 && (await world.store.listOpenSlackTurns()).length === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await world.store.listOpenSlackTurns()).toHaveLength(1);
    await world.restart();
    const editsBefore = reply?.edits.length ?? 0;
    const final = await slack.until(
      () => slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('*Succeeded*')),
      20_000,
    );
    expect(blockText(final.blocks)).toContain('Fixed the adder in attempt 1.');
    expect(reply?.edits.length).toBeGreaterThan(editsBefore);
    expect(reply?.edits.at(-1)?.text).toContain('succeeded');
    // One final message, and nothing left open.
    expect(
      slack.thread(CHANNEL, ts).filter((m) => blockText(m.blocks).includes('*Succeeded*')),
    ).toHaveLength(1);
    for (let i = 0; i < 50 && (await world.store.listOpenSlackTurns()).length > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await world.store.listOpenSlackTurns()).toEqual([]);
  });
});
