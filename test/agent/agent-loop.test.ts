import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiCompatibleModel } from '../../src/adapters/model/openai-compatible-model.js';
import type { AgentEventBody } from '../../src/agent/agent-event.js';
import { runAgentLoop, type AgentLoopInput } from '../../src/agent/agent-loop.js';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import {
  FakeModelServer,
  lastToolResult,
  messagesText,
  type FakeTurn,
} from '../support/fake-model-server.js';
import { hangingHandler, InMemorySandbox } from './support/in-memory-sandbox.js';

const KEY = 'sk-loop-test-7781';
type Event = AttemptEventBody | AgentEventBody;

let server: FakeModelServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function run(
  turns: FakeTurn[],
  sandbox: InMemorySandbox,
  extra: Partial<AgentLoopInput> = {},
): Promise<{ result: Awaited<ReturnType<typeof runAgentLoop>>; events: Event[] }> {
  server = await FakeModelServer.start(turns);
  const events: Event[] = [];
  const result = await runAgentLoop({
    model: new OpenAiCompatibleModel({
      baseUrl: server.baseUrl,
      apiKey: KEY,
      model: 'fake',
      retryBaseMs: 5,
      maxRetries: 2,
    }),
    sandbox,
    prompt: 'Fix the failing test.',
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    ...extra,
  });
  return { result, events };
}

const shell = (command: string): FakeTurn => ({
  toolCalls: [{ name: 'shell', arguments: { command: ['bash', '-lc', command] } }],
});

describe('the agent loop', () => {
  it('runs tool calls, feeds their results back and ends with the model answer', async () => {
    const sandbox = new InMemorySandbox(
      { 'AGENTS.md': 'Run `make check` before finishing.\n' },
      (argv) => ({
        exitCode: argv.join(' ').includes('make check') ? 2 : 0,
        output: 'FAIL: test_add\n',
      }),
    );
    const { result, events } = await run(
      [
        {
          content: 'Planning.',
          toolCalls: [
            {
              name: 'update_plan',
              arguments: { plan: [{ step: 'run the checks', status: 'in_progress' }] },
            },
          ],
          usage: { prompt: 100, completion: 10 },
        },
        { ...shell('make check'), usage: { prompt: 150, completion: 12 } },
        { content: 'Fixed add(); make check passes.', usage: { prompt: 200, completion: 8 } },
      ],
      sandbox,
    );
    expect(result).toMatchObject({
      message: 'Fixed add(); make check passes.',
      succeeded: true,
      stopReason: 'completed',
      turns: 3,
      usage: { promptTokens: 450, completionTokens: 30 },
    });
    expect(result.commands).toEqual([
      {
        command: "bash -lc 'make check'",
        exitCode: 2,
        output: 'FAIL: test_add\n',
        phase: 'agent',
        durationMs: 1,
        timedOut: false,
      },
    ]);
    expect(sandbox.commands[0]?.argv).toEqual(['bash', '-lc', 'make check']);
    expect(sandbox.commands[0]?.options.workdir).toBe('/workspace');

    const requests = server?.requests ?? [];
    expect(requests).toHaveLength(3);
    const system = requests[0]?.body.messages[0];
    expect(system?.role).toBe('system');
    expect(system?.content).toContain('Run `make check` before finishing.');
    expect(system?.content).toContain('run the lint and test commands that AGENTS.md names');
    expect(requests[0]?.body.tools?.map((t) => t.function.name)).toEqual([
      'shell',
      'apply_patch',
      'update_plan',
    ]);
    expect(lastToolResult(requests[2])).toContain('Exit code: 2');
    expect(lastToolResult(requests[2])).toContain('FAIL: test_add');
    for (const request of requests) expect(request.raw).not.toContain(KEY);

    const types = events.map((e) => e.type);
    expect(types).toEqual([
      'agent_turn',
      'usage',
      'tool_call',
      'plan',
      'tool_result',
      'agent_turn',
      'usage',
      'tool_call',
      'command',
      'tool_result',
      'agent_turn',
      'usage',
      'agent_end',
    ]);
    expect(events.find((e) => e.type === 'plan')).toEqual({
      type: 'plan',
      plan: [{ step: 'run the checks', status: 'in_progress' }],
    });
    expect(events.at(-1)).toMatchObject({ type: 'agent_end', reason: 'completed', turns: 3 });
    expect(events.filter((e) => e.type === 'usage').at(-1)).toMatchObject({
      totalPromptTokens: 450,
      totalCompletionTokens: 30,
    });
  });

  it('tells the model about malformed arguments and unknown tools, and goes on', async () => {
    const sandbox = new InMemorySandbox();
    const { result, events } = await run(
      [
        { toolCalls: [{ name: 'shell', arguments: '{"command": ["ls"' }] },
        { toolCalls: [{ name: 'shell', arguments: { command: 'ls', timeout_ms: -5 } }] },
        { toolCalls: [{ name: 'read_file', arguments: { path: 'a' } }] },
        { content: 'ok' },
      ],
      sandbox,
    );
    expect(result.stopReason).toBe('completed');
    const requests = server?.requests ?? [];
    expect(lastToolResult(requests[1])).toMatch(/^The arguments of shell are not valid JSON/);
    expect(lastToolResult(requests[2])).toMatch(/^Invalid arguments for shell: timeout_ms: /);
    expect(lastToolResult(requests[3])).toBe(
      'Unknown tool "read_file". The tools are: shell, apply_patch, update_plan.',
    );
    expect(sandbox.commands).toHaveLength(0);
    expect(
      events.filter((e) => e.type === 'tool_result').map((e) => (e as { ok: boolean }).ok),
    ).toEqual([false, false, false]);
  });

  it('stops a looping call with a reason', async () => {
    const sandbox = new InMemorySandbox();
    const { result, events } = await run(
      Array.from({ length: 6 }, () => shell('cat a.txt')),
      sandbox,
    );
    expect(result.stopReason).toBe('loop');
    expect(result.succeeded).toBe(false);
    expect(result.message).toMatch(
      /^Stopped: the agent repeated the same shell call 4 times in a row/,
    );
    expect(sandbox.commands).toHaveLength(3);
    expect(server?.requests).toHaveLength(4);
    expect(events.at(-1)).toMatchObject({ type: 'agent_end', reason: 'loop' });
    // The conversation stays valid for a follow-up: every call has its result.
    expect(result.messages.at(-1)).toMatchObject({
      role: 'tool',
      content: expect.stringContaining('Not run') as string,
    });
  });

  it('answers every call of the turn that hit the loop limit exactly once', async () => {
    const sandbox = new InMemorySandbox();
    const twoCalls: FakeTurn = {
      toolCalls: [
        { name: 'shell', arguments: { command: ['bash', '-lc', 'cat a.txt'] }, id: 'loop_4' },
        { name: 'shell', arguments: { command: ['ls'] }, id: 'after_loop' },
      ],
    };
    const { result } = await run(
      [shell('cat a.txt'), shell('cat a.txt'), shell('cat a.txt'), twoCalls],
      sandbox,
    );
    expect(result.stopReason).toBe('loop');
    const answers = result.messages.flatMap((m) => (m.role === 'tool' ? [m.toolCallId] : []));
    expect(new Set(answers).size).toBe(answers.length);
    expect(answers.slice(-2)).toEqual(['loop_4', 'after_loop']);
    expect(sandbox.commands).toHaveLength(3);
  });

  it('does not count calls with different arguments as a loop', async () => {
    const sandbox = new InMemorySandbox();
    const { result } = await run(
      [shell('a'), shell('a'), shell('b'), shell('a'), shell('a'), { content: 'done' }],
      sandbox,
    );
    expect(result.stopReason).toBe('completed');
  });

  it('stops at the turn limit, keeping the last words', async () => {
    const sandbox = new InMemorySandbox();
    const { result } = await run(
      [{ content: 'Looking around.', ...shell('ls') }, shell('ls src'), shell('ls test')],
      sandbox,
      { limits: { maxTurns: 2 } },
    );
    expect(result).toMatchObject({ stopReason: 'max_turns', succeeded: false, turns: 2 });
    expect(result.message).toBe(
      "Stopped: the limit of 2 model turns was reached before the agent finished.\n\nThe agent's last words: Looking around.",
    );
    expect(server?.requests).toHaveLength(2);
  });

  it('stops at the token limit', async () => {
    const sandbox = new InMemorySandbox();
    const { result } = await run(
      [
        { ...shell('a'), usage: { prompt: 600, completion: 10 } },
        { ...shell('b'), usage: { prompt: 700, completion: 10 } },
        shell('c'),
      ],
      sandbox,
      {
        limits: { maxTokens: 1000 },
      },
    );
    expect(result.stopReason).toBe('max_tokens');
    expect(result.message).toContain('the limit of 1000 tokens was reached (1320 used)');
    expect(server?.requests).toHaveLength(2);
  });

  it('stops at the wall time, even in the middle of a command', async () => {
    const sandbox = new InMemorySandbox({}, hangingHandler);
    const started = Date.now();
    const { result } = await run([shell('sleep 1000')], sandbox, { limits: { wallTimeMs: 400 } });
    expect(result.stopReason).toBe('wall_time');
    expect(result.message).toMatch(/wall time of 400 ms was used up/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(sandbox.commands[0]?.options.timeoutMs).toBeLessThanOrEqual(400);
  });

  it("stops at the attempt's deadline when it comes before the wall time, saying so", async () => {
    const sandbox = new InMemorySandbox({}, hangingHandler);
    const started = Date.now();
    const { result, events } = await run([shell('sleep 1000')], sandbox, {
      limits: { wallTimeMs: 60_000 },
      deadline: Date.now() + 400,
    });
    expect(result).toMatchObject({ stopReason: 'attempt_time', succeeded: false, turns: 1 });
    expect(result.message).toContain("the attempt's time limit");
    expect(result.message).toContain('resources.timeoutMs');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(sandbox.commands[0]?.options.timeoutMs).toBeLessThanOrEqual(400);
    expect(events.at(-1)).toMatchObject({ type: 'agent_end', reason: 'attempt_time' });

    // A deadline after the wall time leaves the wall time in charge.
    await server?.close();
    const later = await run([shell('sleep 1000')], new InMemorySandbox({}, hangingHandler), {
      limits: { wallTimeMs: 300 },
      deadline: Date.now() + 60_000,
    });
    expect(later.result.stopReason).toBe('wall_time');
  });

  it('retries a 500 with a warning event, and ends with model_error when the API refuses', async () => {
    const sandbox = new InMemorySandbox();
    const { result, events } = await run(
      [
        { fail: 'status', status: 500, body: { error: { message: 'upstream hiccup' } } },
        shell('ls'),
        { fail: 'status', status: 400, body: { error: { message: 'context too long' } } },
      ],
      sandbox,
    );
    expect(events.find((e) => e.type === 'warning')).toMatchObject({
      message: expect.stringContaining('HTTP 500: upstream hiccup') as string,
    });
    expect(result).toMatchObject({ stopReason: 'model_error', succeeded: false });
    expect(result.message).toBe(
      'Stopped: the model API refused the request with HTTP 400: context too long',
    );
    expect(events.find((e) => e.type === 'error')).toMatchObject({ code: 'model_error' });
    expect(sandbox.commands).toHaveLength(1);
  });

  it('is cancelled in the middle of a command: the command is stopped and the loop rejects', async () => {
    const sandbox = new InMemorySandbox({}, hangingHandler);
    server = await FakeModelServer.start([shell('sleep 1000')]);
    const controller = new AbortController();
    const pending = runAgentLoop({
      model: new OpenAiCompatibleModel({ baseUrl: server.baseUrl, model: 'fake' }),
      sandbox,
      prompt: 'x',
      emit: (e) => {
        if (e.type === 'tool_call') setTimeout(() => controller.abort(), 100);
      },
      signal: controller.signal,
    });
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(sandbox.commands[0]?.options.signal?.aborted).toBe(true);
    expect(server.requests).toHaveLength(1);
  });

  it('shows a nested AGENTS.md when the agent works in its directory, once', async () => {
    const sandbox = new InMemorySandbox({
      'AGENTS.md': 'root rules\n',
      'pkg/api/AGENTS.md': 'api rules: run `npm run lint:api`\n',
      'pkg/api/src/x.ts': 'x\n',
    });
    const { result } = await run(
      [
        { toolCalls: [{ name: 'shell', arguments: { command: ['ls'], workdir: 'pkg/api/src' } }] },
        shell('cat pkg/api/src/x.ts'),
        { content: 'done' },
      ],
      sandbox,
    );
    expect(result.stopReason).toBe('completed');
    const requests = server?.requests ?? [];
    expect(messagesText(requests[0])).toContain('More AGENTS.md files exist in: pkg/api');
    expect(messagesText(requests[0])).not.toContain('api rules');
    expect(messagesText(requests[1])).toContain('api rules: run `npm run lint:api`');
    expect(messagesText(requests[2]).split('api rules').length - 1).toBe(1);
  });

  it('masks secret values in what it sends to the model and logs', async () => {
    const sandbox = new InMemorySandbox({}, () => ({
      exitCode: 0,
      output: 'token=hunter2-secret\n',
    }));
    const { events } = await run([shell('cat .npmrc'), { content: 'done' }], sandbox, {
      mask: (text) => text.replaceAll('hunter2-secret', '***'),
    });
    for (const request of server?.requests ?? [])
      expect(request.raw).not.toContain('hunter2-secret');
    expect(lastToolResult(server?.requests[1])).toContain('token=***');
    expect(JSON.stringify(events)).not.toContain('hunter2-secret');
  });

  it('continues a conversation for a follow-up', async () => {
    const sandbox = new InMemorySandbox();
    const first = await run([{ content: 'first answer' }], sandbox);
    await server?.close();
    const second = await run([{ content: 'second answer' }], sandbox, {
      history: first.result.messages,
      prompt: 'Also add a test.',
    });
    const sent = server?.requests[0]?.body.messages ?? [];
    expect(sent.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(sent.at(-1)?.content).toBe('Also add a test.');
    expect(second.result.message).toBe('second answer');
  });
});
