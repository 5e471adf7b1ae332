/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerth } from '../../support/cli.js';
import { startTestServer, type TestServer } from '../../api/api-server.js';
import {
  BOT_USER,
  FakeSlack,
  blockText,
  deliver,
  eventCallback,
  mentionEvent,
} from './fake-slack.js';

/**
 * Linking a Slack user to a token: `POST /v1/tokens` with `slackUser`, `POST
 * /v1/tokens/{idOrName}/slack-user`, and the CLI's `berth token create NAME --slack-user ID` and
 * `berth token link NAME --slack-user ID` (the real binary). A linked user then acts as the token
 * in Slack: its environments are the ones offered; before the link, an ephemeral refusal.
 */

const CHANNEL = 'C0PAYMENTS';
let slack: FakeSlack;
let server: TestServer;

beforeAll(async () => {
  slack = await FakeSlack.start();
  server = await startTestServer({
    env: {
      ...slack.serverEnv,
    },
  });
});

afterAll(async () => {
  await server?.close();
  await slack?.close();
});

const cli = (...args: string[]) =>
  runBerth([...args, '--url', server.url, '--token', server.adminToken]);

/** What Berth answers `user` for `env=nope …` in the mapped channel: refusal or the list. */
async function answerTo(user: string): Promise<string> {
  const event = mentionEvent(CHANNEL, user, `<@${BOT_USER}> env=nope fix it`);
  await deliver(server.url, eventCallback(event));
  return slack.until(() => {
    const ephemeral = slack.ephemerals.find((e) => e.user === user);
    if (ephemeral) return `ephemeral: ${ephemeral.text}`;
    const [reply] = slack.thread(CHANNEL, event.ts as string);
    return reply && blockText(reply.blocks);
  });
}

describe('linking Slack users to tokens', () => {
  it('through the API: create with slackUser, link later; bad ids and non-admins refused', async () => {
    const bad = await server.request('POST', '/v1/tokens', {
      body: { name: 'carol', slackUser: 'carol@example' },
    });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.json.message).toContain('is not a Slack user id');
    // Refused before the token was made.
    const tokens = await server.request('GET', '/v1/tokens');
    expect((tokens.json.tokens as { name: string }[]).map((t) => t.name)).not.toContain('carol');

    const carol = await server.request('POST', '/v1/tokens', {
      body: { name: 'carol', slackUser: 'U0CAROL' },
    });
    expect(carol.status, carol.text).toBe(201);
    const spec = {
      name: 'payments',
      repository: 'https://git.example/acme/payments.git',
      image: 'berth/minimal:latest',
      members: ['carol'],
      triggers: { slack: { channels: [CHANNEL] } },
    };
    expect((await server.request('POST', '/v1/environments', { body: { spec } })).status).toBe(201);
    expect(await answerTo('U0CAROL')).toContain('Environments you may use: `payments`');

    const notAdmin = await server.request('POST', '/v1/tokens/carol/slack-user', {
      token: (carol.json as { token: string }).token,
      body: { slackUser: 'U0MALLORY' },
    });
    expect(notAdmin.status).toBe(403);
    expect(await answerTo('U0MALLORY')).toMatch(/^ephemeral: You may not start Berth tasks here/);

    const unknown = await server.request('POST', '/v1/tokens/nobody/slack-user', {
      body: { slackUser: 'U0X1' },
    });
    expect(unknown.status).toBe(404);
    const linked = await server.request('POST', '/v1/tokens/carol/slack-user', {
      body: { slackUser: 'U0CAROL2' },
    });
    expect(linked.status, linked.text).toBe(200);
    expect(linked.json).toMatchObject({ name: 'carol', slackUser: 'U0CAROL2' });
    expect(await answerTo('U0CAROL2')).toContain('Environments you may use: `payments`');
  });

  it('through the CLI: berth token create NAME --slack-user ID and berth token link NAME --slack-user ID', async () => {
    const bad = await cli('token', 'create', 'dave', '--slack-user', 'dave');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not a Slack user id');

    const created = await cli('token', 'create', 'dave', '--slack-user', 'U0DAVE');
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('created token dave');
    expect(created.stdout).toContain('Slack user U0DAVE');
    // dave may use nothing yet: refused; once a member, offered.
    expect(await answerTo('U0DAVE')).toMatch(/^ephemeral:/);

    const linked = await cli('token', 'link', 'dave', '--slack-user', 'W0DAVE');
    expect(linked.code, linked.stderr).toBe(0);
    expect(linked.stdout).toContain('Slack user W0DAVE now acts as token dave');
    const admin = await cli('token', 'link', 'admin', '--slack-user', 'U0ADMIN');
    expect(admin.code, admin.stderr).toBe(0);
    expect(await answerTo('U0ADMIN')).toContain('Environments you may use: `payments`');
  });
});
