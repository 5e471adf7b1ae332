import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { FakeModelServer, messagesText } from '../support/fake-model-server.js';
import { makeBuggyAdderRepository } from '../support/buggy-adder-repository.js';
import { runGit } from '../support/run-git.js';
import { ADDER_FIX, after, shell } from '../support/scripted-turns.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * A prompt end to end through `berth serve`: the lifecycle runs the model agent against a
 * scripted model (a real Chat Completions server on loopback). The sample repository's test
 * fails; the agent reads AGENTS.md, runs the test, patches the bug, runs it again and answers;
 * the task's diff makes the test pass in a fresh clone.
 */

const API_KEY = 'sk-agent-task-key-5512';

let model: FakeModelServer;
let server: ServeHandle;
let repo: string;
let auth: string[];

beforeAll(async () => {
  const image = lifecycleTestImage();
  repo = makeBuggyAdderRepository('agent-repo');
  model = await FakeModelServer.start([]);
  server = await startServe(
    ['--allow-local-repos', '--model-base-url', model.baseUrl, '--model', 'fake-coder'],
    {
      BERTH_MODEL_API_KEY: API_KEY,
    },
  );
  auth = ['--url', server.url, '--token', server.adminToken];
  const file = join(tempDir('agent-task'), 'env.yaml');
  writeFileSync(file, `name: adder\nrepository: ${repo}\nimage: ${image}\nsetup: echo ready\n`);
  expect((await runBerth(['env', 'create', '--file', file, ...auth])).code).toBe(0);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await model?.close();
});

describe('a prompt through the server with the model agent (docker)', () => {
  it('fixes a failing test and hands back a diff that makes it pass', async () => {
    model.push(
      shell('sh test.sh'),
      after(/FAIL: add 2 3 gave -1/, {
        toolCalls: [{ name: 'apply_patch', arguments: { input: ADDER_FIX } }],
      }),
      after(/src\/add\.sh/, shell('sh test.sh')),
      after(/tests passed/, {
        content: 'Fixed add(): it subtracted instead of adding. `sh test.sh` passes.',
      }),
    );
    const r = await runBerth([
      'exec',
      '--env',
      'adder',
      '--wait',
      '--json',
      'The tests fail. Fix the bug.',
      ...auth,
    ]);
    expect(r.stdout, r.stderr).not.toBe('');
    if (!r.stdout.includes('"status"')) throw new Error(r.stdout + r.stderr);
    const task = JSON.parse(r.stdout) as {
      status: string;
      attempts: Array<{
        diff: string;
        message: string;
        commands: Array<{ command: string; exitCode: number }>;
      }>;
    };
    expect(task.status).toBe('succeeded');
    const [attempt] = task.attempts;
    expect(attempt?.message).toContain('Fixed add()');
    expect(attempt?.diff).toContain('+add() { echo $(( $1 + $2 )); }');
    expect(attempt?.commands.map((c) => c.exitCode)).toEqual([1, 0]);

    // The model saw AGENTS.md, and never the API key in any message.
    const first = model.requests[0];
    expect(messagesText(first)).toContain('Run `sh test.sh` before finishing');
    expect(model.requests.map((q) => messagesText(q)).join('\n')).not.toContain(API_KEY);

    // The diff applies to a fresh clone and makes the test pass there.
    const clone = tempDir('agent-clone');
    execFileSync('git', ['clone', '-q', repo, clone]);
    const patch = join(clone, '..', 'fix.patch');
    writeFileSync(patch, attempt?.diff ?? '');
    runGit(clone, 'apply', patch);
    expect(execFileSync('sh', ['test.sh'], { cwd: clone, encoding: 'utf8' })).toContain(
      'tests passed',
    );
  });

  it("takes the task's own model and limits", async () => {
    const before = model.requests.length;
    model.push(shell('true'), shell('true'));
    const r = await runBerth([
      'exec',
      '--env',
      'adder',
      '--wait',
      '--json',
      '--model',
      'other-model',
      '--max-turns',
      '2',
      'Loop.',
      ...auth,
    ]);
    const task = JSON.parse(r.stdout) as {
      status: string;
      attempts: Array<{ error: string | null; message: string }>;
    };
    expect(`${task.attempts[0]?.error ?? ''} ${task.attempts[0]?.message ?? ''}`).toMatch(/turn/i);
    const sent = model.requests.slice(before);
    expect(sent).toHaveLength(2);
    expect(sent.every((q) => q.body.model === 'other-model')).toBe(true);
    expect(model.remainingTurns).toBe(0);
  });

  it('ends with a reason when the model API answers 400', async () => {
    model.push({ fail: 'status', status: 400, body: { error: { message: 'bad model name' } } });
    const r = await runBerth([
      'exec',
      '--env',
      'adder',
      '--wait',
      '--json',
      'Do something.',
      ...auth,
    ]);
    const task = JSON.parse(r.stdout) as {
      status: string;
      attempts: Array<{ error: string | null; message: string }>;
    };
    expect(task.status).toBe('failed');
    expect(`${task.attempts[0]?.error ?? ''} ${task.attempts[0]?.message ?? ''}`).toMatch(/400/);
  });
});
