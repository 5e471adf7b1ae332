import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BOT_USER,
  blockText,
  buttonPayload,
  deliver,
  eventCallback,
  mentionEvent,
  type PostedMessage,
} from './fake-slack.js';
import { ALICE, CHANNEL, PUBLIC_URL, startSlackWorld, type SlackWorld } from './slack-world.js';

/**
 * The whole scene, in both modes (the Events API over signed HTTP, and Socket Mode's WebSocket):
 * a mention is acknowledged, one threaded reply carries the task id and link and is edited as
 * phases pass, the final Block Kit message has the status, the agent's words (escaped), files,
 * verify, one line per attempt and the buttons; "Pick attempt 2" then "Create pull request"
 * open the pull request on the fake GitHub and its link lands in the thread; a follow-up in the
 * thread is answered the same way. Slack's retries of an event start nothing, after a restart
 * too. Tasks run on the scripted runner (no Docker).
 */

type Transport = {
  event(body: Record<string, unknown>, headers?: Record<string, string>): Promise<void>;
  press(payload: Record<string, unknown>): Promise<void>;
};

function transport(world: SlackWorld, mode: 'http' | 'socket'): Transport {
  if (mode === 'http')
    return {
      async event(body, headers) {
        const response = await deliver(world.url, body, headers ? { headers } : {});
        expect(response.status).toBe(200);
      },
      async press(payload) {
        const response = await deliver(world.url, payload, { form: true });
        expect(response.status).toBe(200);
      },
    };
  return {
    async event(body) {
      await world.slack.sendEnvelope('events_api', body);
    },
    async press(payload) {
      await world.slack.sendEnvelope('interactive', payload);
    },
  };
}

const buttons = (m: PostedMessage | undefined) =>
  (m?.blocks ?? [])
    .filter((b) => b.type === 'actions')
    .flatMap(
      (b) =>
        b.elements as { action_id: string; value?: string; url?: string; text: { text: string } }[],
    );

for (const mode of ['http', 'socket'] as const) {
  describe(`the scene over ${mode === 'http' ? 'the Events API' : 'Socket Mode'}`, () => {
    let world: SlackWorld;
    let send: Transport;
    beforeAll(async () => {
      world = await startSlackWorld({ mode });
      send = transport(world, mode);
      if (mode === 'socket') await world.slack.until(() => world.slack.socketCount > 0);
    });
    afterAll(async () => {
      await world?.close();
    });

    it('mention → threaded progress → final message → pick → pull request → follow-up; retries start nothing', async () => {
      const { slack } = world;
      const mention = mentionEvent(
        CHANNEL,
        ALICE,
        `<@${BOT_USER}> fix the failing adder tests attempts=2`,
      );
      const ts = mention.ts as string;
      const body = eventCallback(mention);
      await send.event(body);

      // One progress reply, with the task id and its link, edited as phases pass.
      const [reply] = await slack.until(
        () => slack.thread(CHANNEL, ts).length > 0 && slack.thread(CHANNEL, ts),
      );
      const taskId = /task_[A-Za-z0-9]+/.exec(reply?.text ?? '')?.[0] ?? '';
      expect(reply?.text).toContain(`<${PUBLIC_URL}/tasks/${taskId}|open in Berth>`);
      const final = await slack.until(() =>
        slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('*Succeeded*')),
      );
      const progress = slack.thread(CHANNEL, ts)[0];
      expect(progress?.edits.length).toBeGreaterThan(1);
      expect(progress?.edits.at(-1)?.text).toContain('attempt 1: succeeded · attempt 2: succeeded');
      expect(slack.thread(CHANNEL, ts)).toHaveLength(2);

      const text = blockText(final.blocks);
      expect(text).toContain(`task \`${taskId}\``);
      expect(text).toContain(
        'Fixed the adder in attempt 1. &lt;https://evil.test|Approve&gt; &lt;!channel&gt;',
      );
      expect(text).toContain('1 file changed, +1 −1: add.sh');
      expect(text).toContain('Verify `sh test.sh`: passed');
      expect(text).toContain('1. succeeded · 1 file changed, +1 −1 · verify passed');
      expect(text).toContain('2. succeeded');
      const first = buttons(final);
      expect(first.map((b) => b.text.text)).toEqual([
        'View diff',
        'Pick attempt 1',
        'Pick attempt 2',
      ]);
      expect(first[0]?.url).toBe(`${PUBLIC_URL}/tasks/${taskId}`);

      // Slack retries the event (same event_id): nothing more starts.
      await send.event(body, { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' });
      await new Promise((r) => setTimeout(r, 300));
      expect(await world.store.listTasks({})).toHaveLength(1);

      // A press naming this task from a message of another thread is ignored (a button belongs
      // to the thread that carries its task).
      const pickFirst = first.find((b) => b.text.text === 'Pick attempt 1');
      const elsewhere = { ...final, threadTs: '1699999999.000100', ts: '1699999999.000200' };
      const beforePress = slack.messages.length;
      await send.press(
        buttonPayload(ALICE, elsewhere, pickFirst?.action_id ?? '', pickFirst?.value ?? ''),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(slack.messages.length).toBe(beforePress);
      expect((await world.store.getTask(taskId))?.pickedAttemptId ?? null).toBeNull();

      // Pick attempt 2: answered in the thread, and the final message again with the PR button.
      const pick = first.find((b) => b.text.text === 'Pick attempt 2');
      await send.press(buttonPayload(ALICE, final, pick?.action_id ?? '', pick?.value ?? ''));
      const picked = await slack.until(() =>
        slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('Attempt 2 picked')),
      );
      expect(picked).toBeDefined();
      const again = await slack.until(() => {
        const m = slack.thread(CHANNEL, ts).at(-1);
        return m && buttons(m).some((b) => b.text.text === 'Create pull request') && m;
      });

      // Someone who may not use the environment presses it: refused, nothing pushed.
      const create = buttons(again).find((b) => b.text.text === 'Create pull request');
      await send.press(buttonPayload('U0BOB', again, create?.action_id ?? '', create?.value ?? ''));
      await slack.until(() => slack.ephemerals.find((e) => e.user === 'U0BOB'));
      expect(world.github.pulls).toHaveLength(0);

      await send.press(buttonPayload(ALICE, again, create?.action_id ?? '', create?.value ?? ''));
      const prReply = await slack.until(() =>
        slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('Pull request')),
      );
      expect(world.github.pulls).toHaveLength(1);
      expect(blockText(prReply.blocks)).toContain(
        `Pull request <https://github.example/acme/payments/pull/1|#1> opened from branch \`berth/${taskId}\``,
      );

      // A follow-up in the thread: a new progress reply and a final message for the turn.
      const before = slack.thread(CHANNEL, ts).length;
      await send.event(
        eventCallback(mentionEvent(CHANNEL, ALICE, `<@${BOT_USER}> also add a test`, ts)),
      );
      const followFinal = await slack.until(() =>
        slack.thread(CHANNEL, ts).find((m) => blockText(m.blocks).includes('(follow-up)')),
      );
      expect(blockText(followFinal.blocks)).toContain('Follow-up done: also add a test');
      const followProgress = slack.thread(CHANNEL, ts)[before];
      expect(followProgress?.text).toContain(`Follow-up on task \`${taskId}\``);
      expect(followProgress?.edits.at(-1)?.text).toContain('succeeded');
      expect(await world.store.listTasks({})).toHaveLength(1);

      // After a restart, Slack's retry of the first event still starts nothing.
      await world.restart();
      if (mode === 'socket') await slack.until(() => slack.socketCount > 0);
      send = transport(world, mode);
      const posted = slack.messages.length;
      await send.event(body, { 'x-slack-retry-num': '2', 'x-slack-retry-reason': 'http_error' });
      await new Promise((r) => setTimeout(r, 500));
      expect(await world.store.listTasks({})).toHaveLength(1);
      expect(slack.messages.length).toBe(posted);
    });

    it('a failed setup says its failing line and exit code in the thread', async () => {
      const { slack } = world;
      const mention = mentionEvent(CHANNEL, ALICE, `<@${BOT_USER}> try the broken setup`);
      await send.event(eventCallback(mention));
      const final = await slack.until(() =>
        slack
          .thread(CHANNEL, mention.ts as string)
          .find((m) => blockText(m.blocks).includes('*Failed*')),
      );
      expect(blockText(final.blocks)).toContain(
        'The setup script failed at line 2 (`npm ci`) with exit code 127.',
      );
      expect(buttons(final)).toEqual([]);
    });
  });
}
