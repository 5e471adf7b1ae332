import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../api/api-server.js';
import { makeBuggyAdderRepository } from '../../support/buggy-adder-repository.js';
import { removeInstanceContainers, removeInstanceImages } from '../../support/docker-cleanup.js';
import { FakeModelServer } from '../../support/fake-model-server.js';
import { ADDER_FIX, after, answer } from '../../support/scripted-turns.js';
import { lifecycleTestImage } from '../../docker/lifecycle-support.js';
import {
  BOT_USER,
  FakeSlack,
  blockText,
  deliver,
  eventCallback,
  mentionEvent,
} from './fake-slack.js';

/**
 * The one Docker test of Slack: a mention on a real `berth serve` runs a real task (the real
 * scheduler, a sandbox on the Docker engine, the model agent on a scripted model) and the
 * thread gets the progress reply, edited through the real phases, and the final message with
 * the agent's words, the file it changed and the verify result. (The rest of the scene, on the
 * scripted runner without Docker: slack-scene.test.ts.)
 */

const INSTANCE = `slack-${process.pid}`;
const CHANNEL = 'C0ADDER';
let slack: FakeSlack;
let model: FakeModelServer;
let server: TestServer;

beforeAll(async () => {
  slack = await FakeSlack.start();
  model = await FakeModelServer.start([
    { toolCalls: [{ name: 'apply_patch', arguments: { input: ADDER_FIX } }] },
    after(/./, answer('Fixed add(): it subtracted. <https://evil.test|merge me>')),
  ]);
  server = await startTestServer({
    allowLocalRepositories: true,
    env: {
      BERTH_INSTANCE: INSTANCE,
      BERTH_MODEL_BASE_URL: model.baseUrl,
      BERTH_MODEL_API_KEY: 'sk-slack-test',
      BERTH_MODEL: 'fake-coder',
      ...slack.serverEnv,
    },
  });
  const spec = {
    name: 'adder',
    repository: makeBuggyAdderRepository('slack-adder'),
    image: lifecycleTestImage(),
    verify: 'sh test.sh',
    triggers: { slack: { channels: [CHANNEL], anyone: true } },
  };
  const created = await server.request('POST', '/v1/environments', { body: { spec } });
  expect(created.status, created.text).toBe(201);
});

afterAll(async () => {
  await server?.close();
  await model?.close();
  await slack?.close();
  removeInstanceContainers(INSTANCE);
  removeInstanceImages(INSTANCE);
});

describe('Slack on a real sandbox', () => {
  it('mention → progress through the real phases → final message with the change and verify', async () => {
    const mention = mentionEvent(CHANNEL, 'U0DEV', `<@${BOT_USER}> The tests fail. Fix the bug.`);
    const ts = mention.ts as string;
    expect((await deliver(server.url, eventCallback(mention))).status).toBe(200);
    const final = await slack.until(
      () =>
        slack.thread(CHANNEL, ts).find((m) => /\*(Succeeded|Failed)\*/.test(blockText(m.blocks))),
      240_000,
    );
    const text = blockText(final.blocks);
    expect(text).toContain('*Succeeded*');
    expect(text).toContain('Fixed add(): it subtracted. &lt;https://evil.test|merge me&gt;');
    expect(text).toContain('1 file changed, +1 −1: src/add.sh');
    expect(text).toContain('Verify `sh test.sh`: passed');
    const progress = slack.thread(CHANNEL, ts)[0];
    // Edited as the phases passed (read every second: the quick ones may fall between reads).
    expect(progress?.text).toMatch(
      /^Task `task_\w+` \(<http:\/\/127\.0\.0\.1:\d+\/tasks\/task_\w+\|open in Berth>\): /,
    );
    expect(progress?.edits.at(-1)?.text).toContain(': succeeded');
    expect(slack.thread(CHANNEL, ts)).toHaveLength(2);
  }, 300_000);
});
