import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { FakeModelServer, messagesText } from '../support/fake-model-server.js';
import { makeBuggyAdderRepository } from '../support/buggy-adder-repository.js';
import { ADDER_FIX, after, shell } from '../support/scripted-turns.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * The model agent's configuration and limits through `berth serve` (configured by variables
 * only: BERTH_MODEL_BASE_URL, BERTH_MODEL, BERTH_MODEL_API_KEY and the BERTH_AGENT_* limits),
 * `berth task logs` of a model task, cancelling during a model request, the attempt's own time
 * limit, and `berth run` end to end with a model.
 */

const API_KEY = 'sk-agent-limits-key-7781';

interface Attempt {
  id: string;
  status: string;
  diff: string;
  message: string;
  error: string | null;
  errorCode: string | null;
  tokens: number | null;
}
interface Task {
  id: string;
  status: string;
  attempts: Attempt[];
}

let model: FakeModelServer;
let server: ServeHandle;
let repo: string;
let auth: string[];
let image: string;

function envFile(name: string, extra = ''): string {
  const file = join(tempDir('agent-limits'), `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nrepository: ${repo}\nimage: ${image}\nsetup: echo ready\n${extra}`,
  );
  return file;
}

const shellCall = (command: string) => ({
  name: 'shell',
  arguments: { command: ['bash', '-lc', command] },
});

async function exec(env: string, prompt: string, ...flags: string[]): Promise<Task> {
  const r = await runBerth(['exec', '--env', env, '--wait', '--json', ...flags, prompt, ...auth]);
  if (!r.stdout.includes('"status"')) throw new Error(r.stdout + r.stderr);
  return JSON.parse(r.stdout) as Task;
}

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeBuggyAdderRepository('agent-limits-repo');
  model = await FakeModelServer.start([]);
  server = await startServe(['--allow-local-repos'], {
    BERTH_MODEL_BASE_URL: model.baseUrl,
    BERTH_MODEL: 'model-from-variable',
    BERTH_MODEL_API_KEY: API_KEY,
    BERTH_AGENT_MAX_TURNS: '3',
    BERTH_AGENT_MAX_TOKENS: '5000',
    BERTH_AGENT_WALL_TIME_MS: '8000',
  });
  auth = ['--url', server.url, '--token', server.adminToken];
  for (const file of [
    envFile('adder'),
    envFile('adder-chosen', 'model: model-from-environment\n'),
    envFile('adder-short', 'resources:\n  timeoutMs: 30000\n'),
  ]) {
    const r = await runBerth(['env', 'create', '--file', file, ...auth]);
    expect(r.code, r.stderr).toBe(0);
  }
}, 180_000);

afterEach(() => model.clearTurns());

afterAll(async () => {
  await server?.stop();
  await model?.close();
});

describe('the model agent configured by variables, through the server (docker)', () => {
  it("takes BERTH_MODEL_BASE_URL, BERTH_MODEL and BERTH_MODEL_API_KEY; an environment's model: wins", async () => {
    const before = model.requests.length;
    model.push({ content: 'Nothing to do.' });
    expect((await exec('adder', 'Look around.')).status).toBe('succeeded');
    const sent = model.requests[before];
    expect(sent?.body.model).toBe('model-from-variable');
    expect(sent?.headers.authorization).toBe(`Bearer ${API_KEY}`);

    model.push({ content: 'Nothing to do either.' });
    expect((await exec('adder-chosen', 'Look around.')).status).toBe('succeeded');
    expect(model.requests[before + 1]?.body.model).toBe('model-from-environment');
    expect(model.requests[before + 1]?.headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  it('shows the turns, tool calls, outputs and tokens in `berth task logs`', async () => {
    model.push(
      { content: 'Let me look.', toolCalls: [shellCall('echo hello-from-the-sandbox')] },
      after(/hello-from-the-sandbox/, {
        content: 'All done here.',
        usage: { prompt: 250, completion: 7 },
      }),
    );
    const task = await exec('adder', 'Say hello.');
    expect(task.status).toBe('succeeded');
    const r = await runBerth(['task', 'logs', task.id, ...auth]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('agent: Let me look.');
    expect(r.stdout).toMatch(/> shell .*echo hello-from-the-sandbox/);
    expect(r.stdout).toMatch(/< shell: .*/);
    expect(r.stdout).toContain('hello-from-the-sandbox\n');
    expect(r.stdout).toMatch(/tokens: prompt 100, completion \d+, total \d+ \(attempt total \d+\)/);
    expect(r.stdout).toMatch(/tokens: prompt 250, completion 7, total 257 \(attempt total \d+\)/);
    expect(r.stdout).toContain('agent: All done here.');
    expect(r.stdout).toContain('agent ended (completed) after 2 turns');
  });

  it('holds the server limits BERTH_AGENT_MAX_TURNS, _MAX_TOKENS and _WALL_TIME_MS', async () => {
    model.push(shell('echo 1'), shell('echo 2'), shell('echo 3'), shell('echo 4'));
    const turns = await exec('adder', 'Keep going.');
    expect(turns.status).toBe('failed');
    expect(turns.attempts[0]?.message).toContain('the limit of 3 model turns');
    model.clearTurns();

    model.push(
      { toolCalls: [shellCall('echo big')], usage: { prompt: 6000, completion: 10 } },
      shell('echo 2'),
    );
    const tokens = await exec('adder', 'Use tokens.');
    expect(tokens.attempts[0]?.message).toContain(
      'the limit of 5000 tokens was reached (6010 used)',
    );
    expect(tokens.attempts[0]?.tokens).toBe(6010);
    model.clearTurns();

    const started = Date.now();
    model.push(shell('sleep 60'), shell('echo 2'));
    const wall = await exec('adder', 'Sleep.');
    expect(wall.attempts[0]?.message).toContain("the agent's wall time of 8000 ms was used up");
    expect(Date.now() - started).toBeLessThan(50_000);
  });

  it('ends at the attempt time limit with its diff, saying the time limit ended it', async () => {
    // The model fixes the bug, then sleeps turn after turn; resources.timeoutMs is 30 s, and the
    // task's own limits are far (so only the attempt's time can end it).
    model.push({ toolCalls: [{ name: 'apply_patch', arguments: { input: ADDER_FIX } }] });
    for (let i = 0; i < 30; i += 1) model.push(shell(`sleep 4; echo nap ${i}`));
    const started = Date.now();
    const task = await exec(
      'adder-short',
      'Fix it, then wait.',
      '--max-turns',
      '100',
      '--max-time-ms',
      '600000',
    );
    const attempt = task.attempts[0];
    const logs = await runBerth(['task', 'logs', task.id, ...auth]);
    expect(task.status).toBe('failed');
    expect(attempt?.errorCode, logs.stdout.slice(-3000)).toBe('task_failed');
    expect(attempt?.message).toContain("the attempt's time limit");
    expect(attempt?.message).toContain('resources.timeoutMs');
    expect(attempt?.diff).toContain('+add() { echo $(( $1 + $2 )); }');
    expect(attempt?.tokens).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(logs.stdout).toContain('agent ended (attempt_time)');
  }, 120_000);

  it('cancelling during a model request closes the connection and cancels the attempt', async () => {
    const before = model.requests.length;
    model.push({ fail: 'hang' });
    const submitted = await runBerth(['exec', '--env', 'adder', '--json', 'Hang.', ...auth]);
    const { id } = JSON.parse(submitted.stdout) as Task;
    const request = await model.waitForRequests(before + 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(request.closedAt).toBeUndefined();
    const cancelledAt = performance.now();
    const cancel = await runBerth(['task', 'cancel', id, ...auth]);
    expect(cancel.code, cancel.stderr).toBe(0);
    for (let i = 0; i < 100 && request.closedAt === undefined; i += 1)
      await new Promise((r) => setTimeout(r, 50));
    expect(request.closedAt).toBeDefined();
    // The connection closes once the server has the cancel (the CLI's start is most of it).
    expect((request.closedAt ?? Infinity) - cancelledAt).toBeLessThan(5_000);
    let task: Task | undefined;
    for (let i = 0; i < 100; i += 1) {
      const shown = await runBerth(['task', 'show', id, '--json', ...auth]);
      task = JSON.parse(shown.stdout) as Task;
      if (task.attempts[0]?.status === 'cancelled') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(task?.status).toBe('cancelled');
    expect(task?.attempts[0]).toMatchObject({ status: 'cancelled', errorCode: 'cancelled' });
    expect(model.requests).toHaveLength(before + 1);
  });
});

describe('berth run with a model (docker)', () => {
  it('runs a prompt end to end and prints the diff and the message as JSON', async () => {
    const before = model.requests.length;
    model.push(
      shell('sh test.sh'),
      after(/FAIL: add 2 3 gave -1/, {
        toolCalls: [{ name: 'apply_patch', arguments: { input: ADDER_FIX } }],
      }),
      after(/src\/add\.sh/, { content: 'Fixed add().' }),
    );
    const file = envFile('adder-run');
    const r = await runBerth(
      [
        'run',
        '--env-file',
        file,
        '--repo',
        repo,
        '--data-dir',
        tempDir('agent-run-data'),
        '--model-base-url',
        model.baseUrl,
        '--model',
        'model-for-run',
        'The test fails. Fix it.',
        '--json',
      ],
      { BERTH_MODEL_API_KEY: API_KEY },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { task: { status: string }; attempts: Attempt[] };
    expect(result.task.status).toBe('succeeded');
    expect(result.attempts[0]?.message).toBe('Fixed add().');
    expect(result.attempts[0]?.diff).toContain('+add() { echo $(( $1 + $2 )); }');
    const sent = model.requests.slice(before);
    expect(sent).toHaveLength(3);
    expect(sent.every((q) => q.body.model === 'model-for-run')).toBe(true);
    expect(sent[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(messagesText(sent[0])).toContain('Run `sh test.sh` before finishing');
  }, 180_000);

  it('refuses limits the API would refuse, with exit 2', async () => {
    const file = envFile('adder-refused');
    for (const [flag, value, text] of [
      ['--max-tokens', '5', '--max-tokens'],
      ['--max-time-ms', '1', '--max-time-ms'],
      ['--max-turns', '5000', '--max-turns'],
    ] as const) {
      const r = await runBerth([
        'run',
        '--env-file',
        file,
        '--model-base-url',
        model.baseUrl,
        '--model',
        'm',
        flag,
        value,
        'prompt',
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(text);
      expect(r.stderr).toContain(`got ${value}`);
    }
  });
});
