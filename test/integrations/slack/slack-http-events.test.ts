/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../src/adapters/store/sqlite/sqlite-store.js';
import { startTestServer, type TestServer } from '../../api/api-server.js';
import {
  BOT_TOKEN,
  BOT_USER,
  FakeSlack,
  blockText,
  deliver,
  eventCallback,
  mentionEvent,
} from './fake-slack.js';

/**
 * The Events API on `berth serve` (a real server, real SQLite, the fake Slack on loopback):
 * signatures, what is ignored, the message grammar's refusals, routing by channel and who may.
 * Only refusals and ignored events are sent here, except the `anyone: true` case, whose task is
 * only checked to exist (tasks that run are in slack-conversation.test.ts).
 */

const MAPPED = 'C0PAYMENTS';
const OPEN = 'C0OPEN';
let slack: FakeSlack;
let server: TestServer;

const mention = (channel: string, user: string, text: string) =>
  eventCallback(mentionEvent(channel, user, `<@${BOT_USER}> ${text}`));

async function taskCount(): Promise<number> {
  const list = await server.request('GET', '/v1/tasks');
  return (list.json.tasks as unknown[]).length;
}

beforeAll(async () => {
  slack = await FakeSlack.start();
  server = await startTestServer({
    // The open environment's repository is a path that does not exist: its task fails at the
    // checkout, on this machine (no packet leaves it).
    allowLocalRepositories: true,
    env: {
      // A model is named so prompts are accepted; no attempt gets as far as asking it.
      BERTH_MODEL_BASE_URL: 'http://127.0.0.1:9/v1',
      BERTH_MODEL: 'scripted',
      ...slack.serverEnv,
      BERTH_PUBLIC_URL: 'https://berth.example.test',
    },
  });
  await server.createToken('alice');
  for (const spec of [
    {
      name: 'payments',
      repository: 'https://git.example/acme/payments.git',
      image: 'berth/minimal:latest',
      members: ['alice'],
      triggers: { slack: { channels: [MAPPED] } },
    },
    {
      name: 'billing',
      repository: 'https://git.example/acme/billing.git',
      image: 'berth/minimal:latest',
      members: ['alice'],
    },
    {
      name: 'secret-env',
      repository: 'https://git.example/acme/secret.git',
      image: 'berth/minimal:latest',
    },
    {
      name: 'open',
      repository: 'https://git.example/acme/open.git',
      image: 'berth/minimal:latest',
      triggers: { slack: { channels: [OPEN], anyone: true } },
    },
  ]) {
    const created = await server.request('POST', '/v1/environments', { body: { spec } });
    expect(created.status, created.text).toBe(201);
  }
  // Alice's Slack user is linked to her token (the store's link, as `berth token link` makes it).
  const store = SqliteStore.open(server.dataDir);
  const alice = await store.getActiveTokenByName('alice');
  await store.linkSlackUser('U0ALICE', alice?.id ?? '', new Date().toISOString());
  await store.close();
});

afterAll(async () => {
  await server?.close();
  await slack?.close();
});

describe('signed HTTP events', () => {
  it('checked auth.test at start with the bot token', () => {
    expect(slack.calls.some((c) => c.method === 'auth.test' && c.token === BOT_TOKEN)).toBe(true);
  });

  it('refuses a missing or wrong signature and an old or future timestamp with 401; nothing runs', async () => {
    const body = mention(MAPPED, 'U0ALICE', 'fix the tests');
    const text = JSON.stringify(body);
    const before = slack.calls.length;
    const missing = await fetch(`${server.url}/v1/integrations/slack/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: text,
    });
    expect(missing.status).toBe(401);
    expect((await deliver(server.url, body, { secret: 'not-the-secret' })).status).toBe(401);
    const sixMinutesAgo = Math.floor(Date.now() / 1000) - 6 * 60;
    expect((await deliver(server.url, body, { timestamp: sixMinutesAgo })).status).toBe(401);
    const sixMinutesAhead = Math.floor(Date.now() / 1000) + 6 * 60;
    expect((await deliver(server.url, body, { timestamp: sixMinutesAhead })).status).toBe(401);
    // A signature over another body (the body changed on the way).
    const forged = await fetch(`${server.url}/v1/integrations/slack/events`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(await import('./fake-slack.js')).signedHeaders('{}'),
      },
      body: text,
    });
    expect(forged.status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(slack.calls.length).toBe(before);
    expect(await taskCount()).toBe(0);
  });

  it('refuses an unsigned or wrongly signed button press (interactivity) with 401', async () => {
    const payload = {
      type: 'block_actions',
      user: { id: 'U0ALICE' },
      channel: { id: MAPPED },
      container: { type: 'message', channel_id: MAPPED, message_ts: '1.1', thread_ts: '1.0' },
      actions: [{ type: 'button', action_id: 'berth_create_pr', value: 'task_x' }],
    };
    const form = `payload=${encodeURIComponent(JSON.stringify(payload))}`;
    const unsigned = await fetch(`${server.url}/v1/integrations/slack/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    expect(unsigned.status).toBe(401);
    const wrong = await deliver(server.url, payload, { form: true, secret: 'nope' });
    expect(wrong.status).toBe(401);
  });

  it('answers url_verification with the challenge', async () => {
    const response = await deliver(server.url, {
      type: 'url_verification',
      token: 't',
      challenge: 'abc123',
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ challenge: 'abc123' });
  });

  it('ignores messages from bots and event types it does not handle (200)', async () => {
    const before = slack.calls.length;
    const botMessage = eventCallback({
      ...mentionEvent(MAPPED, 'U0ALICE', `<@${BOT_USER}> fix it`),
      bot_id: 'B0BERTH',
    });
    expect((await deliver(server.url, botMessage)).status).toBe(200);
    const reaction = eventCallback({
      type: 'reaction_added',
      user: 'U0ALICE',
      reaction: 'eyes',
      item: { type: 'message', channel: MAPPED, ts: '1.2' },
    });
    expect((await deliver(server.url, reaction)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(slack.calls.slice(before).filter((c) => c.method.startsWith('chat.'))).toEqual([]);
    expect(await taskCount()).toBe(0);
  });
});

describe('routing and who may', () => {
  it('an unmapped channel gets a threaded reply saying how to map it', async () => {
    const body = mention('C0NOWHERE', 'U0ALICE', 'fix the tests');
    expect((await deliver(server.url, body)).status).toBe(200);
    const ts = (body.event as { ts: string }).ts;
    const [reply] = await slack.until(
      () => slack.thread('C0NOWHERE', ts).length > 0 && slack.thread('C0NOWHERE', ts),
    );
    expect(blockText(reply?.blocks ?? [])).toContain(
      'triggers: { slack: { channels: [C0NOWHERE] } }',
    );
    expect(await taskCount()).toBe(0);
  });

  it('a user with no linked token gets an ephemeral refusal and nothing runs', async () => {
    const body = mention(MAPPED, 'U0STRANGER', 'fix the tests env=secret-env');
    expect((await deliver(server.url, body)).status).toBe(200);
    const refusal = await slack.until(() => slack.ephemerals.find((e) => e.user === 'U0STRANGER'));
    expect(refusal.text).toContain('You may not start Berth tasks here');
    // Nothing about the environments (not even secret-env's name) is shown.
    expect(refusal.text).not.toContain('secret-env');
    expect(slack.thread(MAPPED, (body.event as { ts: string }).ts)).toEqual([]);
    expect(await taskCount()).toBe(0);
  });

  it('env= naming an environment the user may not use lists the ones they may use', async () => {
    for (const env of ['secret-env', 'nope']) {
      const body = mention(MAPPED, 'U0ALICE', `env=${env} fix the tests`);
      await deliver(server.url, body);
      const ts = (body.event as { ts: string }).ts;
      const [reply] = await slack.until(
        () => slack.thread(MAPPED, ts).length > 0 && slack.thread(MAPPED, ts),
      );
      const text = blockText(reply?.blocks ?? []);
      expect(text).toContain(`There is no environment "${env}" you may use`);
      expect(text).toContain('`billing`, `payments`');
      expect(text).not.toContain('`secret-env`');
    }
    expect(await taskCount()).toBe(0);
  });

  it('attempts above the cap, an empty prompt, branch and sha together: a reply, nothing runs', async () => {
    const cases: [string, string][] = [
      ['attempts=9 fix the tests', 'at most 8 attempts'],
      ['', 'Say what to do after the mention, for example'],
      ['env=payments', 'Say what to do after the mention, for example'],
      ['fix it branch=main sha=abcdef1', 'give either branch= or sha=, not both'],
      ['attempts=two fix it', 'attempts= takes a whole number from 1 to 8'],
    ];
    for (const [text, expected] of cases) {
      const body = mention(MAPPED, 'U0ALICE', text);
      await deliver(server.url, body);
      const ts = (body.event as { ts: string }).ts;
      const [reply] = await slack.until(
        () => slack.thread(MAPPED, ts).length > 0 && slack.thread(MAPPED, ts),
      );
      expect(blockText(reply?.blocks ?? [])).toContain(expected);
    }
    expect(await taskCount()).toBe(0);
  });

  it('anyone: true lets every member of the channel start a task there, acting for that environment only', async () => {
    const body = mention(OPEN, 'U0ANYONE', 'fix the flaky test');
    expect((await deliver(server.url, body)).status).toBe(200);
    const ts = (body.event as { ts: string }).ts;
    const [reply] = await slack.until(
      () => slack.thread(OPEN, ts).length > 0 && slack.thread(OPEN, ts),
    );
    const taskId = /task_[A-Za-z0-9]+/.exec(reply?.text ?? '')?.[0];
    expect(taskId, reply?.text).toBeDefined();
    expect(reply?.text).toContain(`<https://berth.example.test/tasks/${taskId}|open in Berth>`);
    const task = await server.request('GET', `/v1/tasks/${taskId}`);
    expect(task.status, task.text).toBe(200);
    expect(task.json.environment).toBe('open');
    expect(task.json.prompt).toBe('fix the flaky test');
    expect(task.json.createdBy).toBe('slack:U0ANYONE');
    // The real scheduler runs it; its repository does not exist, so it fails, and the thread
    // gets the final message (no buttons: there is no result).
    const final = await slack.until(
      () => slack.thread(OPEN, ts).find((m) => blockText(m.blocks).includes('*Failed*')),
      60_000,
    );
    expect(blockText(final.blocks)).toContain(`task \`${taskId}\``);
    expect(final.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(slack.thread(OPEN, ts)[0]?.edits.at(-1)?.text).toContain('failed');
    // The same user, elsewhere (env= another environment): refused.
    const elsewhere = mention(OPEN, 'U0ANYONE', 'env=payments fix it');
    await deliver(server.url, elsewhere);
    const [other] = await slack.until(() => {
      const t = slack.thread(OPEN, (elsewhere.event as { ts: string }).ts);
      return t.length > 0 && t;
    });
    expect(blockText(other?.blocks ?? [])).toContain(
      'There is no environment "payments" you may use',
    );
  });
});
