import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { FakeModelServer, type FakeRequest } from '../support/fake-model-server.js';
import { makeBuggyAdderRepository } from '../support/buggy-adder-repository.js';
import { ADDER_FIX, after, shell } from '../support/scripted-turns.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * Follow-ups resume the picked attempt's conversation, and a task's status follows its latest
 * turn, through `berth serve`, the CLI, the real Docker engine and a scripted model (a real Chat
 * Completions server on loopback). The server runs one attempt at a time, so the scripted turns
 * go to the attempts in order: attempt 1 fails (the model API answers 400), attempt 2 fixes the
 * bug. Attempt 2 is picked and followed up: the model's first request of the follow-up carries
 * the earlier conversation (request, tool calls, tool results, final answer) and then the new
 * prompt, without the model key or the environment's secret. Task status: failed (a failed
 * attempt in the first turn), succeeded after the follow-up, failed after a failing follow-up.
 */

const INSTANCE = `followconv-${process.pid}`;
const API_KEY = 'sk-follow-up-conversation-8812';
const SECRET = 'dk-deploy-key-5521-zz';
const PROMPT = 'The tests fail. Fix the bug.';
const FOLLOW_UP = 'Now say in one line what the bug was.';

interface AttemptJson {
  id: string;
  status: string;
  followUpOf: string | null;
  message: string | null;
  error: string | null;
}
interface TaskJson {
  id: string;
  status: string;
  picked: string | null;
  attempts: AttemptJson[];
}

let model: FakeModelServer;
let server: ServeHandle;
let auth: string[];

async function berthJson(...args: string[]): Promise<TaskJson & { attempt?: string }> {
  const r = await runBerth([...args, '--json', ...auth]);
  if (!r.stdout.includes('"status"')) throw new Error(`${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as TaskJson & { attempt?: string };
}

beforeAll(async () => {
  const image = lifecycleTestImage();
  const repo = makeBuggyAdderRepository('followup-repo');
  model = await FakeModelServer.start([]);
  server = await startServe(
    ['--allow-local-repos', '--model-base-url', model.baseUrl, '--model', 'fake-coder'],
    { BERTH_MODEL_API_KEY: API_KEY, BERTH_CONCURRENCY: '1', BERTH_INSTANCE: INSTANCE },
  );
  auth = ['--url', server.url, '--token', server.adminToken];
  const file = join(tempDir('followup'), 'env.yaml');
  writeFileSync(
    file,
    `name: adder\nrepository: ${repo}\nimage: ${image}\nsetup: echo ready\nsecrets: [DEPLOY_KEY]\n`,
  );
  const created = await runBerth([
    'env',
    'create',
    '--file',
    file,
    '--secret',
    `DEPLOY_KEY=${SECRET}`,
    ...auth,
  ]);
  expect(created.code, created.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  removeInstanceImages(INSTANCE);
  await model?.close();
});

describe('follow-ups resume the conversation; the task status follows the latest turn (docker)', () => {
  let task: TaskJson;

  it('runs two attempts one after the other: the first fails, the second fixes the bug', async () => {
    model.push(
      // attempt 1
      { fail: 'status', status: 400, body: { error: { message: 'scripted refusal' } } },
      // attempt 2
      shell('sh test.sh'),
      after(/FAIL: add 2 3 gave -1/, {
        toolCalls: [{ name: 'apply_patch', arguments: { input: ADDER_FIX } }],
      }),
      after(/src\/add\.sh/, shell('sh test.sh')),
      after(/tests passed/, {
        content: `Fixed add(): it subtracted. \`sh test.sh\` passes. (I did not need ${SECRET}.)`,
      }),
    );
    task = await berthJson('exec', '--env', 'adder', '--attempts', '2', '--wait', PROMPT);
    expect(task.attempts.map((a) => a.status)).toEqual(['failed', 'succeeded']);
    expect(task.status).toBe('failed');
    expect(model.remainingTurns).toBe(0);
  });

  it("continues the picked attempt's conversation: earlier request, tool calls, results, answer, then the new prompt", async () => {
    const picked = task.attempts[1]!;
    const pick = await runBerth(['task', 'pick', task.id, picked.id, ...auth]);
    expect(pick.code, pick.stderr).toBe(0);
    const before = model.requests.length;
    model.push(
      after(/./, shell('cat src/add.sh')),
      after(/\$1 \+ \$2/, { content: 'The bug: add() subtracted instead of adding.' }),
    );
    const after1 = await berthJson('task', 'followup', task.id, FOLLOW_UP, '--wait');
    const turn = after1.attempts.find((a) => a.id === after1.attempt);
    expect(turn).toMatchObject({ status: 'succeeded', followUpOf: picked.id });
    expect(turn?.message).toBe('The bug: add() subtracted instead of adding.');

    const first: FakeRequest | undefined = model.requests[before];
    const sent = first?.body.messages ?? [];
    expect(sent[0]?.role).toBe('system');
    expect(sent[0]?.content).toContain('Run `sh test.sh` before finishing');
    expect(sent[1]).toMatchObject({ role: 'user', content: PROMPT });
    const calls = sent.flatMap((m) => m.tool_calls ?? []);
    expect(calls.map((c) => c.function.name)).toEqual(['shell', 'apply_patch', 'shell']);
    expect(calls[0]?.function.arguments).toContain('sh test.sh');
    const results = sent.filter((m) => m.role === 'tool').map((m) => m.content ?? '');
    expect(results).toHaveLength(3);
    expect(results[0]).toContain('FAIL: add 2 3 gave -1');
    expect(results[2]).toContain('tests passed');
    // Every tool result answers the call before it.
    for (const m of sent.filter((x) => x.role === 'tool'))
      expect(calls.map((c) => c.id)).toContain(m.tool_call_id);
    const answer = sent.at(-2);
    expect(answer?.role).toBe('assistant');
    expect(answer?.content).toContain('Fixed add(): it subtracted.');
    expect(sent.at(-1)).toMatchObject({ role: 'user', content: FOLLOW_UP });
    // The new prompt as written, not the summary used when no conversation was kept.
    expect(first?.raw).not.toContain('Earlier request:');
    // Neither the model key nor the environment's secret is in what was stored and sent again.
    expect(first?.raw).not.toContain(API_KEY);
    expect(first?.raw).not.toContain(SECRET);
    expect(answer?.content).toContain('***');

    // The task follows its latest turn: succeeded, although attempt 1 failed (still shown).
    expect(after1.status).toBe('succeeded');
    expect(after1.attempts.map((a) => a.status)).toEqual(['failed', 'succeeded', 'succeeded']);
    const show = await runBerth(['task', 'show', task.id, ...auth]);
    expect(show.stdout).toContain(task.attempts[0]!.id);
  });

  it('a failing follow-up makes the task failed, a later good one succeeded again; earlier turns stay', async () => {
    const failing = await runBerth([
      'task',
      'followup',
      task.id,
      '--command',
      'exit 4',
      '--wait',
      '--json',
      ...auth,
    ]);
    const failed = JSON.parse(failing.stdout) as TaskJson;
    expect(failed.status).toBe('failed');
    expect(failed.attempts.map((a) => a.status)).toEqual([
      'failed',
      'succeeded',
      'succeeded',
      'failed',
    ]);
    const list = await runBerth(['task', 'list', '--json', ...auth]);
    expect(list.stdout).toContain(task.id);

    const good = await berthJson('task', 'followup', task.id, '--command', 'true', '--wait');
    expect(good.status).toBe('succeeded');
    expect(good.attempts).toHaveLength(5);
  });
});
