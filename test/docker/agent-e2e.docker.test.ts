import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OpenAiCompatibleModel } from '../../src/adapters/model/openai-compatible-model.js';
import { ModelAgent, type ModelAgentOptions } from '../../src/agent/model-agent.js';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import type { AgentContext } from '../../src/lifecycle/agent-phase.js';
import { FakeModelServer, type FakeTurn } from '../support/fake-model-server.js';
import { ADDER_FIX, BUGGY_ADDER, after, answer, shell } from '../support/scripted-turns.js';
import { startAgentTestSandbox, type AgentTestSandbox } from './agent-support.js';

/**
 * The agent end to end: a real sandbox (Docker), the model agent over the lifecycle's
 * AgentContext, and a scripted model on a fake Chat Completions server on loopback.
 */

const KEY = 'sk-e2e-secret-key-4411';

let box: AgentTestSandbox;
let server: FakeModelServer | undefined;
beforeAll(async () => {
  box = await startAgentTestSandbox();
});
afterAll(async () => {
  await box?.remove();
});
beforeEach(async () => {
  await box.reset(BUGGY_ADDER);
});
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Run {
  outcome: Awaited<ReturnType<ModelAgent['run']>>;
  events: AttemptEventBody[];
}

async function runAgent(
  turns: FakeTurn[],
  options: Partial<ModelAgentOptions> = {},
  signal = new AbortController().signal,
  baseUrl?: string,
): Promise<Run> {
  server = await FakeModelServer.start(turns);
  const events: AttemptEventBody[] = [];
  const context: AgentContext = {
    attemptId: 'att_e2e',
    prompt: 'The tests fail. Fix the bug.',
    workdir: '/workspace',
    exec: () => Promise.reject(new Error('the model agent runs commands through the runtime')),
    emit: (e) => events.push(e),
    signal,
    runtime: box.runtime,
    sandboxId: box.id,
    env: { CI: '1' },
    mask: (t) => t,
    commandOutput: () => ({
      onOutput: (chunk) =>
        events.push({ type: 'log', stream: chunk.stream, text: chunk.data.toString('utf8') }),
      end: () => events.push({ type: 'log', stream: 'system', text: '(command ended)' }),
    }),
  };
  const agent = new ModelAgent({
    model: new OpenAiCompatibleModel({
      baseUrl: baseUrl ?? server.baseUrl,
      apiKey: KEY,
      model: 'fake-coder',
      retryBaseMs: 20,
      maxRetries: 2,
    }),
    environment: {
      languages: { node: '22' },
      internet: {
        access: 'allowlist',
        domains: ['registry.example'],
        presets: ['common-dependencies'],
      },
    },
    ...options,
  });
  return { outcome: await agent.run(context), events };
}

describe('the model agent in a real sandbox', () => {
  it('reads AGENTS.md, runs the failing tests, patches the bug, runs them again and answers', async () => {
    await box.sh(
      'cd /workspace && git init -q && git add -A && git -c user.name=t -c user.email=t@berth.example commit -qm initial',
    );
    const { outcome, events } = await runAgent([
      (request) => {
        const system = request.body.messages[0]?.content ?? '';
        if (!system.includes('Run `sh test.sh` before finishing'))
          return { content: 'UNEXPECTED: no AGENTS.md in the system prompt' };
        return {
          content: 'I will run the tests AGENTS.md names.',
          toolCalls: [
            {
              name: 'update_plan',
              arguments: {
                plan: [
                  { step: 'run sh test.sh', status: 'in_progress' },
                  { step: 'fix the bug', status: 'pending' },
                ],
              },
            },
          ],
        };
      },
      shell('sh test.sh'),
      after(/^Exit code: 1\n[\s\S]*FAIL: add 2 3 gave -1/, shell('cat src/add.sh')),
      after(/\$1 - \$2/, { toolCalls: [{ name: 'apply_patch', arguments: { input: ADDER_FIX } }] }),
      after(/^Applied\. Changed files:\nM src\/add\.sh$/, shell('sh test.sh')),
      after(
        /^Exit code: 0\n[\s\S]*tests passed/,
        answer(
          'Fixed add() in src/add.sh (it subtracted). `sh test.sh` now prints "tests passed".',
        ),
      ),
    ]);
    expect(outcome).toMatchObject({
      message: 'Fixed add() in src/add.sh (it subtracted). `sh test.sh` now prints "tests passed".',
      succeeded: true,
      stopReason: 'completed',
      turns: 6,
    });
    expect(outcome.usage.promptTokens).toBeGreaterThan(0);
    expect(outcome.commands.map((c) => [c.command, c.exitCode])).toEqual([
      ["bash -lc 'sh test.sh'", 1],
      ["bash -lc 'cat src/add.sh'", 0],
      ["bash -lc 'sh test.sh'", 0],
    ]);
    expect((await box.sh('cat /workspace/src/add.sh')).output).toBe(
      '# add two numbers\nadd() { echo $(( $1 + $2 )); }\n',
    );
    expect(await box.sh('cd /workspace && sh test.sh')).toEqual({
      exitCode: 0,
      output: 'tests passed\n',
    });
    // The diff the results would show: exactly the fix.
    expect((await box.sh('cd /workspace && git status --porcelain')).output).toBe(
      ' M src/add.sh\n',
    );
    const diff = (await box.sh('cd /workspace && git diff')).output;
    expect(diff).toContain('-add() { echo $(( $1 - $2 )); }\n+add() { echo $(( $1 + $2 )); }');

    const system = server?.requests[0]?.body.messages[0]?.content ?? '';
    expect(system).toContain('node 22');
    expect(system).toContain('preset common-dependencies, registry.example');
    for (const request of server?.requests ?? []) {
      expect(request.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(request.raw).not.toContain(KEY);
    }
    const types = events.map((e) => e.type as string);
    expect(types.filter((t) => t === 'agent_turn')).toHaveLength(6);
    expect(types.filter((t) => t === 'command')).toHaveLength(3);
    expect(types).toContain('plan');
    const live = events.flatMap((e) => (e.type === 'log' ? [e.text] : [])).join('');
    expect(live).toContain('FAIL: add 2 3 gave -1\n(command ended)');
    expect(live).toContain('tests passed\n(command ended)');
    expect(types.at(-1)).toBe('agent_end');
  });

  it('lives through a 500, malformed arguments and an unknown tool, and stops a loop', async () => {
    const { outcome, events } = await runAgent([
      { fail: 'status', status: 500 },
      { toolCalls: [{ name: 'shell', arguments: '{"command": "sh test.sh' }] },
      after(/not valid JSON/, {
        toolCalls: [{ name: 'edit_file', arguments: { path: 'src/add.sh' } }],
      }),
      after(/^Unknown tool "edit_file"/, shell('sh test.sh')),
      shell('sh test.sh'),
      shell('sh test.sh'),
      shell('sh test.sh'),
    ]);
    expect(outcome).toMatchObject({ stopReason: 'loop', succeeded: false });
    expect(outcome.message).toMatch(/repeated the same shell call 4 times in a row/);
    expect(outcome.commands).toHaveLength(3);
    expect(events.some((e) => e.type === 'warning' && e.message.includes('HTTP 500'))).toBe(true);
  });

  it('stops a command that never ends at its timeout and tells the model', async () => {
    const { outcome } = await runAgent([
      shell('echo started; sleep 3600', { timeout_ms: 1500 }),
      after(
        /^The command was stopped after its timeout of 1500 ms[\s\S]*started/,
        answer('The command hangs; I gave up on it.'),
      ),
    ]);
    expect(outcome).toMatchObject({
      stopReason: 'completed',
      message: 'The command hangs; I gave up on it.',
    });
    expect(outcome.commands[0]).toMatchObject({ timedOut: true });
  });

  it('ends with a reason when the model API is unreachable', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const { outcome, events } = await runAgent([], {}, undefined, `http://127.0.0.1:${port}/v1`);
    expect(outcome).toMatchObject({ stopReason: 'model_error', succeeded: false, turns: 1 });
    expect(outcome.message).toMatch(
      /^Stopped: the model API failed after 3 tries: network error \(ECONNREFUSED\)/,
    );
    expect(events.filter((e) => e.type === 'warning')).toHaveLength(2);
  });

  it('is cancelled mid-command: the command stops in the sandbox and no further request is sent', async () => {
    const controller = new AbortController();
    const pending = runAgent([shell('sleep 888')], {}, controller.signal);
    const poll = setInterval(() => {
      void box
        .sh('for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done')
        .then((r) => {
          if (r.output.includes('sleep 888')) controller.abort();
        });
    }, 200);
    try {
      await expect(pending).rejects.toBeDefined();
    } finally {
      clearInterval(poll);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(
      (await box.sh('for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done'))
        .output,
    ).not.toContain('sleep 888');
    expect(server?.requests).toHaveLength(1);
  });
});
