import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { runDoctor } from '../../../src/doctor/doctor.js';
import { APP_TOKEN, BOT_TOKEN, FakeSlack, SIGNING_SECRET } from './fake-slack.js';

/** `berth doctor` reports the Slack set-up: the mode, and the bot token checked with auth.test. */

let slack: FakeSlack;
let dataDir: string;

beforeAll(async () => {
  slack = await FakeSlack.start();
  dataDir = mkdtempSync(join(tmpdir(), 'berth-slack-doctor-'));
});
afterAll(async () => {
  await slack?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function slackLine(env: Record<string, string>) {
  const config = loadConfig(
    { dataDir },
    { HOME: dataDir, BERTH_EXTRA_CA_FILES: '', BERTH_SLACK_API_URL: slack.apiUrl, ...env },
  );
  const checks = await runDoctor(config, { registries: false });
  return checks.find((c) => c.name === 'slack');
}

describe('berth doctor and Slack', () => {
  it('says nothing about Slack when it is not configured', async () => {
    expect(await slackLine({})).toBeUndefined();
  });

  it('reports a valid bot token (auth.test) and the mode', async () => {
    const line = await slackLine({
      BERTH_SLACK_BOT_TOKEN: BOT_TOKEN,
      BERTH_SLACK_APP_TOKEN: APP_TOKEN,
    });
    expect(line).toMatchObject({ ok: true });
    expect(line?.detail).toContain('the bot token is valid (auth.test: berth in Fake Team)');
    expect(line?.detail).toContain('mode: Socket Mode (BERTH_SLACK_APP_TOKEN)');
    expect(slack.calls.some((c) => c.method === 'auth.test' && c.token === BOT_TOKEN)).toBe(true);
  });

  it('reports a token Slack refuses, and a set-up with no way in', async () => {
    const refused = await slackLine({
      BERTH_SLACK_BOT_TOKEN: 'xoxb-wrong',
      BERTH_SLACK_SIGNING_SECRET: SIGNING_SECRET,
    });
    expect(refused).toMatchObject({ ok: false });
    expect(refused?.detail).toContain('invalid_auth');
    expect(refused?.detail).toContain('the Events API at POST /v1/integrations/slack/events');
    const noWay = await slackLine({ BERTH_SLACK_BOT_TOKEN: BOT_TOKEN });
    expect(noWay).toMatchObject({ ok: false });
    expect(noWay?.fix).toContain('BERTH_SLACK_APP_TOKEN');
  });
});
