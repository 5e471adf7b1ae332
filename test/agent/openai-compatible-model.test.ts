import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiCompatibleModel } from '../../src/adapters/model/openai-compatible-model.js';
import type { ChatMessage, ModelRetryInfo, ToolDefinition } from '../../src/ports/model-client.js';
import { FakeModelServer, type FakeReply, type FakeRequest } from '../support/fake-model-server.js';

const TOOLS: ToolDefinition[] = [
  {
    name: 'shell',
    description: 'run a command',
    parameters: { type: 'object', properties: { command: { type: 'array' } } },
  },
];
const KEY = 'sk-test-key-0f3c9';

let server: FakeModelServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function model(
  base: string,
  extra: Partial<ConstructorParameters<typeof OpenAiCompatibleModel>[0]> = {},
): OpenAiCompatibleModel {
  return new OpenAiCompatibleModel({
    baseUrl: base,
    apiKey: KEY,
    model: 'fake-1',
    retryBaseMs: 5,
    ...extra,
  });
}

const request = { messages: [{ role: 'user' as const, content: 'hello' }], tools: TOOLS };

describe('OpenAiCompatibleModel', () => {
  it('streams content and assembles tool-call deltas by index, with usage', async () => {
    server = await FakeModelServer.start(
      [
        {
          content: 'Let me look at the tests.',
          toolCalls: [
            { name: 'shell', arguments: { command: ['bash', '-lc', 'sh test.sh'] }, id: 'call_a' },
            {
              name: 'update_plan',
              arguments: { plan: [{ step: 'fix the bug', status: 'in_progress' }] },
              id: 'call_b',
            },
          ],
          usage: { prompt: 1234, completion: 56 },
        },
      ],
      { chunkChars: 3 },
    );
    const deltas: string[] = [];
    const turn = await model(server.baseUrl).complete(request, { onDelta: (t) => deltas.push(t) });
    expect(turn.message.content).toBe('Let me look at the tests.');
    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.join('')).toBe('Let me look at the tests.');
    expect(turn.message.toolCalls).toEqual([
      {
        id: 'call_a',
        name: 'shell',
        arguments: JSON.stringify({ command: ['bash', '-lc', 'sh test.sh'] }),
      },
      {
        id: 'call_b',
        name: 'update_plan',
        arguments: JSON.stringify({ plan: [{ step: 'fix the bug', status: 'in_progress' }] }),
      },
    ]);
    expect(turn.usage).toEqual({ promptTokens: 1234, completionTokens: 56 });
    expect(turn.finishReason).toBe('tool_calls');

    const sent = server.requests[0];
    expect(sent?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(sent?.body.model).toBe('fake-1');
    expect(sent?.body.stream).toBe(true);
    expect(sent?.body.stream_options).toEqual({ include_usage: true });
    expect(sent?.body.tools?.[0]).toEqual({
      type: 'function',
      function: TOOLS[0] && { ...TOOLS[0] },
    });
    expect(sent?.raw.includes(KEY)).toBe(false);
  });

  it('sends the conversation in the wire format (assistant tool_calls, tool results)', async () => {
    server = await FakeModelServer.start([{ content: 'done' }]);
    await model(server.baseUrl).complete({
      model: 'other-model',
      tools: TOOLS,
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'fix it' },
        {
          role: 'assistant',
          content: null,
          toolCalls: [{ id: 'c1', name: 'shell', arguments: '{"command":["ls"]}' }],
        },
        { role: 'tool', toolCallId: 'c1', content: 'exit code 0' },
      ],
    });
    const body = server.requests[0]?.body;
    expect(body?.model).toBe('other-model');
    expect(body?.messages).toEqual([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'fix it' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'c1',
            type: 'function',
            function: { name: 'shell', arguments: '{"command":["ls"]}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'c1', content: 'exit code 0' },
    ]);
  });

  it('sends extra body fields (not in place of the conversation) and a grown conversation whole', async () => {
    server = await FakeModelServer.start([{ content: 'one' }, { content: 'two' }]);
    const client = model(server.baseUrl, {
      extraBody: { temperature: 0.2, messages: 'not these' },
    });
    const messages: ChatMessage[] = [{ role: 'user', content: 'first "quoted" \u2028 text' }];
    const first = await client.complete({ messages, tools: [] });
    messages.push(first.message, { role: 'user', content: 'second' });
    await client.complete({ messages, tools: [] });
    const [a, b] = server.requests;
    expect(a?.body).toMatchObject({ temperature: 0.2, model: 'fake-1', stream: true });
    expect(a?.body.tools).toBeUndefined();
    expect(a?.body.messages).toEqual([{ role: 'user', content: 'first "quoted" \u2028 text' }]);
    expect(b?.body.messages).toEqual([
      { role: 'user', content: 'first "quoted" \u2028 text' },
      { role: 'assistant', content: 'one' },
      { role: 'user', content: 'second' },
    ]);
  });

  it('asks again without stream_options when a server refuses them, and remembers', async () => {
    const refuseOptions = (request: FakeRequest): FakeReply =>
      request.body.stream_options
        ? {
            fail: 'status',
            status: 400,
            body: { error: { message: 'Unrecognized request argument supplied: stream_options' } },
          }
        : { content: 'ok', usage: null };
    server = await FakeModelServer.start([refuseOptions, refuseOptions, refuseOptions]);
    const client = model(server.baseUrl);
    expect((await client.complete(request)).message.content).toBe('ok');
    expect((await client.complete(request)).message.content).toBe('ok');
    expect(server.requests.map((r) => r.body.stream_options !== undefined)).toEqual([
      true,
      false,
      false,
    ]);
  });

  it('reads whole tool calls sent one per chunk without an index, and names repeated in deltas', async () => {
    const chunk = (delta: unknown, finish: string | null = null): string =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    server = await FakeModelServer.start([
      {
        raw:
          chunk({ role: 'assistant', content: null }) +
          chunk({
            tool_calls: [{ id: 'a', function: { name: 'shell', arguments: '{"command":["ls"]}' } }],
          }) +
          chunk({ tool_calls: [{ id: 'b', function: { name: 'update_plan', arguments: '{}' } }] }) +
          chunk({}, 'tool_calls') +
          'data: [DONE]\n\n',
      },
      {
        raw:
          chunk({
            tool_calls: [
              {
                index: 0,
                id: 'c',
                type: 'function',
                function: { name: 'shell', arguments: '{"comm' },
              },
            ],
          }) +
          chunk({
            tool_calls: [{ index: 0, function: { name: 'shell', arguments: 'and":["ls"]}' } }],
          }) +
          chunk({}, 'tool_calls') +
          'data: [DONE]\n\n',
      },
    ]);
    const first = await model(server.baseUrl).complete(request);
    expect(first.message.toolCalls).toEqual([
      { id: 'a', name: 'shell', arguments: '{"command":["ls"]}' },
      { id: 'b', name: 'update_plan', arguments: '{}' },
    ]);
    expect(first.usage.estimated).toBe(true);
    const second = await model(server.baseUrl).complete(request);
    expect(second.message.toolCalls).toEqual([
      { id: 'c', name: 'shell', arguments: '{"command":["ls"]}' },
    ]);
  });

  it('works without streaming and reads the usage of the whole answer', async () => {
    server = await FakeModelServer.start([
      {
        toolCalls: [{ name: 'shell', arguments: '{"command":["ls"]}', id: 'x' }],
        usage: { prompt: 10, completion: 2 },
      },
    ]);
    const turn = await model(server.baseUrl, { stream: false }).complete(request);
    expect(server.requests[0]?.body.stream).toBe(false);
    expect(turn.message.toolCalls).toEqual([
      { id: 'x', name: 'shell', arguments: '{"command":["ls"]}' },
    ]);
    expect(turn.usage).toEqual({ promptTokens: 10, completionTokens: 2 });
  });

  it('estimates the usage when the API reports none', async () => {
    server = await FakeModelServer.start([{ content: 'x'.repeat(400), usage: null }]);
    const turn = await model(server.baseUrl).complete(request);
    expect(turn.usage.estimated).toBe(true);
    expect(turn.usage.completionTokens).toBe(100);
    expect(turn.usage.promptTokens).toBeGreaterThan(10);
  });

  it('retries a 500 and then succeeds', async () => {
    server = await FakeModelServer.start([
      { fail: 'status', status: 500, body: { error: { message: 'boom' } } },
      { content: 'ok' },
    ]);
    const retries: ModelRetryInfo[] = [];
    const turn = await model(server.baseUrl).complete(request, { onRetry: (r) => retries.push(r) });
    expect(turn.message.content).toBe('ok');
    expect(server.requests).toHaveLength(2);
    expect(retries).toHaveLength(1);
    expect(retries[0]?.reason).toBe('HTTP 500: boom');
  });

  it('honours Retry-After on a 429', async () => {
    server = await FakeModelServer.start([
      {
        fail: 'status',
        status: 429,
        headers: { 'retry-after': '1' },
        body: { error: { message: 'slow down' } },
      },
      { content: 'ok' },
    ]);
    const retries: ModelRetryInfo[] = [];
    const turn = await model(server.baseUrl).complete(request, { onRetry: (r) => retries.push(r) });
    expect(turn.message.content).toBe('ok');
    expect(retries[0]?.delayMs).toBe(1000);
    const gap = (server.requests[1]?.receivedAt ?? 0) - (server.requests[0]?.receivedAt ?? 0);
    expect(gap).toBeGreaterThanOrEqual(950);
  });

  it('gives up after the bounded retries with the last status', async () => {
    server = await FakeModelServer.start(
      Array.from({ length: 5 }, () => ({
        fail: 'status' as const,
        status: 503,
        body: 'overloaded',
      })),
    );
    const error = await model(server.baseUrl, { maxRetries: 2 })
      .complete(request)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'model_error',
      message: 'the model API failed after 3 tries: HTTP 503: overloaded',
    });
    expect(server.requests).toHaveLength(3);
  });

  it('never retries a 400 and names the status and the API message', async () => {
    server = await FakeModelServer.start([
      {
        fail: 'status',
        status: 400,
        body: { error: { message: "Invalid schema for function 'shell'" } },
      },
      { content: 'never' },
    ]);
    const error = await model(server.baseUrl)
      .complete(request)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'model_error',
      message:
        "the model API refused the request with HTTP 400: Invalid schema for function 'shell'",
      details: { status: 400 },
    });
    expect(server.requests).toHaveLength(1);
    expect(String((error as Error).message)).not.toContain(KEY);
  });

  it('does not retry a 401 either', async () => {
    server = await FakeModelServer.start([
      { fail: 'status', status: 401, body: { error: { message: 'bad key' } } },
    ]);
    await expect(model(server.baseUrl).complete(request)).rejects.toMatchObject({
      message: expect.stringContaining('HTTP 401: bad key') as string,
    });
    expect(server.requests).toHaveLength(1);
  });

  it('treats a malformed stream as a failure, retried, then a clear error', async () => {
    server = await FakeModelServer.start([{ fail: 'garbage' }, { fail: 'garbage' }]);
    const error = await model(server.baseUrl, { maxRetries: 1 })
      .complete(request)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'model_error' });
    expect((error as Error).message).toContain('a stream chunk is not JSON');
    expect(server.requests).toHaveLength(2);
  });

  it('recovers from a stream cut in the middle', async () => {
    server = await FakeModelServer.start([{ fail: 'cut' }, { content: 'whole' }]);
    const turn = await model(server.baseUrl).complete(request);
    expect(turn.message.content).toBe('whole');
  });

  it('times out a request that never answers', async () => {
    server = await FakeModelServer.start([{ fail: 'hang' }, { fail: 'hang' }]);
    const error = await model(server.baseUrl, { timeoutMs: 300, maxRetries: 1 })
      .complete(request)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'timeout',
      message: 'the model API did not answer within 300 ms (2 tries)',
    });
    expect(server.requests).toHaveLength(2);
  });

  it('is cancelled by the signal, mid-request and during a backoff', async () => {
    server = await FakeModelServer.start([{ fail: 'hang' }]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    await expect(
      model(server.baseUrl).complete(request, { signal: controller.signal }),
    ).rejects.toMatchObject({ code: 'cancelled' });

    server.push({ fail: 'status', status: 429, headers: { 'retry-after': '20' } });
    const second = new AbortController();
    const started = Date.now();
    const pending = model(server.baseUrl).complete(request, {
      signal: second.signal,
      onRetry: () => second.abort(),
    });
    await expect(pending).rejects.toMatchObject({ code: 'cancelled' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('reports an unreachable API after its retries', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const error = await model(`http://127.0.0.1:${port}/v1`, { maxRetries: 2 })
      .complete(request)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'model_error' });
    expect((error as Error).message).toMatch(
      /failed after 3 tries: network error \(ECONNREFUSED\)/,
    );
  });

  it('never shows the API key when the client is logged', async () => {
    const { inspect } = await import('node:util');
    const client = model('http://127.0.0.1:9/v1');
    expect(inspect(client, { depth: 5, showHidden: true })).not.toContain(KEY);
    expect(JSON.stringify(client)).not.toContain(KEY);
  });

  it('refuses a base URL that is not http(s)', () => {
    expect(() => new OpenAiCompatibleModel({ baseUrl: 'file:///etc', model: 'm' })).toThrow(
      /http or https/,
    );
    expect(() => new OpenAiCompatibleModel({ baseUrl: 'not a url', model: 'm' })).toThrow(
      /not a URL/,
    );
  });
});
