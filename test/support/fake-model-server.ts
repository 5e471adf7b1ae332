import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake OpenAI-compatible model API for the tests: a real HTTP server on loopback speaking Chat
 * Completions (`POST /v1/chat/completions`, streamed as SSE or not, with tool calls and usage),
 * driven by a script of turns. Each request takes the next turn; every request is recorded.
 */

export interface FakeWireMessage {
  role: string;
  content?: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

export interface FakeRequest {
  headers: IncomingMessage['headers'];
  /** The raw body text (for leak checks). */
  raw: string;
  body: {
    model?: string;
    messages: FakeWireMessage[];
    tools?: {
      type: string;
      function: { name: string; description: string; parameters: unknown };
    }[];
    stream?: boolean;
    stream_options?: { include_usage?: boolean };
  };
  /** When the request's body had arrived (performance.now()). */
  receivedAt: number;
  /** When its response closed (answered, or the client went away; performance.now()). */
  closedAt?: number;
}

export interface FakeAnswer {
  content?: string;
  toolCalls?: { name: string; arguments: string | Record<string, unknown>; id?: string }[];
  /** `null`: report no usage at all. Default: derived from the text lengths. */
  usage?: { prompt: number; completion: number } | null;
  finishReason?: string;
}

export type FakeFailure =
  | { fail: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** 200 with a body that is not what the protocol says. */
  | { fail: 'garbage' }
  /** Accepts the request and never answers. */
  | { fail: 'hang' }
  /** A stream that starts and then the connection is cut. */
  | { fail: 'cut' };

/** A 200 with exactly this body (for wire variants of other servers). */
export interface FakeRaw {
  raw: string;
  contentType?: string;
}

export type FakeReply = FakeAnswer | FakeFailure | FakeRaw;
export type FakeTurn = FakeReply | ((request: FakeRequest) => FakeReply);

export interface FakeModelServerOptions {
  /** Split streamed content and arguments into pieces of this many characters. Default 7. */
  chunkChars?: number;
}

export class FakeModelServer {
  readonly requests: FakeRequest[] = [];
  private readonly turns: FakeTurn[];
  private readonly server: Server;
  private port = 0;

  private constructor(
    turns: FakeTurn[],
    private readonly options: FakeModelServerOptions,
  ) {
    this.turns = [...turns];
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    });
  }

  static async start(
    turns: FakeTurn[] = [],
    options: FakeModelServerOptions = {},
  ): Promise<FakeModelServer> {
    const fake = new FakeModelServer(turns, options);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  /** The base URL to configure (`…/v1`). */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  /** Adds turns to the end of the script. */
  push(...turns: FakeTurn[]): void {
    this.turns.push(...turns);
  }

  get remainingTurns(): number {
    return this.turns.length;
  }

  /** Drops the turns left in the script (a test that ended before using them all). */
  clearTurns(): void {
    this.turns.length = 0;
  }

  /** Resolves once this many requests have arrived (polls; rejects after `timeoutMs`). */
  async waitForRequests(count: number, timeoutMs = 120_000): Promise<FakeRequest> {
    const until = Date.now() + timeoutMs;
    while (this.requests.length < count) {
      if (Date.now() > until)
        throw new Error(`the fake model had ${this.requests.length} of ${count} requests`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.requests[count - 1] as FakeRequest;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      sendJson(res, 404, { error: { message: `no route ${req.method ?? ''} ${req.url ?? ''}` } });
      return;
    }
    let body: FakeRequest['body'];
    try {
      body = JSON.parse(raw) as FakeRequest['body'];
    } catch {
      sendJson(res, 400, { error: { message: 'the body is not JSON' } });
      return;
    }
    const request: FakeRequest = { headers: req.headers, raw, body, receivedAt: performance.now() };
    this.requests.push(request);
    res.once('close', () => {
      request.closedAt = performance.now();
    });
    const turn = this.turns.shift();
    if (turn === undefined) {
      sendJson(res, 500, { error: { message: 'the fake model script has no turn left' } });
      return;
    }
    const reply = typeof turn === 'function' ? turn(request) : turn;
    if ('raw' in reply) {
      res.writeHead(200, { 'content-type': reply.contentType ?? 'text/event-stream' });
      res.end(reply.raw);
      return;
    }
    if ('fail' in reply) {
      this.fail(reply, res, body.stream === true);
      return;
    }
    if (body.stream === true) this.stream(reply, res, body.stream_options?.include_usage === true);
    else sendJson(res, 200, this.completion(reply));
  }

  private fail(failure: FakeFailure, res: ServerResponse, stream: boolean): void {
    switch (failure.fail) {
      case 'status':
        res.writeHead(failure.status, { 'content-type': 'application/json', ...failure.headers });
        res.end(
          typeof failure.body === 'string'
            ? failure.body
            : JSON.stringify(failure.body ?? { error: { message: `fake ${failure.status}` } }),
        );
        return;
      case 'garbage':
        if (stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end('data: {"choices": [ this is not json\n\n');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('<html>not json</html>');
        }
        return;
      case 'hang':
        res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json' });
        res.flushHeaders();
        return;
      case 'cut':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          `data: ${JSON.stringify(chunkOf({ role: 'assistant', content: 'partial' }, null))}\n\n`,
          () => {
            res.destroy();
          },
        );
        return;
    }
  }

  private usageOf(
    answer: FakeAnswer,
  ): { prompt_tokens: number; completion_tokens: number; total_tokens: number } | undefined {
    if (answer.usage === null) return undefined;
    const usage = answer.usage ?? {
      prompt: 100,
      completion: Math.ceil(
        ((answer.content ?? '').length + JSON.stringify(answer.toolCalls ?? []).length) / 4,
      ),
    };
    return {
      prompt_tokens: usage.prompt,
      completion_tokens: usage.completion,
      total_tokens: usage.prompt + usage.completion,
    };
  }

  private completion(answer: FakeAnswer): Record<string, unknown> {
    const calls = wireCalls(answer);
    const usage = this.usageOf(answer);
    return {
      id: 'chatcmpl-fake',
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: 'fake',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: answer.content ?? null,
            ...(calls.length > 0 ? { tool_calls: calls } : {}),
          },
          finish_reason: answer.finishReason ?? (calls.length > 0 ? 'tool_calls' : 'stop'),
        },
      ],
      ...(usage ? { usage } : {}),
    };
  }

  private stream(answer: FakeAnswer, res: ServerResponse, includeUsage: boolean): void {
    const size = this.options.chunkChars ?? 7;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (chunk: unknown): void => {
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    send(chunkOf({ role: 'assistant', content: '' }, null));
    for (const piece of pieces(answer.content ?? '', size)) send(chunkOf({ content: piece }, null));
    wireCalls(answer).forEach((call, index) => {
      send(
        chunkOf(
          {
            tool_calls: [
              {
                index,
                id: call.id,
                type: 'function',
                function: { name: call.function.name, arguments: '' },
              },
            ],
          },
          null,
        ),
      );
      for (const piece of pieces(call.function.arguments, size)) {
        send(chunkOf({ tool_calls: [{ index, function: { arguments: piece } }] }, null));
      }
    });
    const calls = answer.toolCalls ?? [];
    send(chunkOf({}, answer.finishReason ?? (calls.length > 0 ? 'tool_calls' : 'stop')));
    const usage = this.usageOf(answer);
    if (includeUsage && usage)
      send({
        id: 'chatcmpl-fake',
        object: 'chat.completion.chunk',
        created: 0,
        model: 'fake',
        choices: [],
        usage,
      });
    res.end('data: [DONE]\n\n');
  }
}

function wireCalls(
  answer: FakeAnswer,
): { id: string; type: 'function'; function: { name: string; arguments: string } }[] {
  return (answer.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_fake_${index}_${Math.random().toString(36).slice(2, 8)}`,
    type: 'function',
    function: {
      name: call.name,
      arguments:
        typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
    },
  }));
}

function chunkOf(
  delta: Record<string, unknown>,
  finishReason: string | null,
): Record<string, unknown> {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: 'fake',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  };
}

function pieces(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** The text of every message of a request, for "did the agent send X" checks. */
export function messagesText(request: FakeRequest | undefined): string {
  return (request?.body.messages ?? []).map((m) => `${m.role}: ${m.content ?? ''}`).join('\n');
}

/** The last tool message of a request (what the agent answered to the previous tool call). */
export function lastToolResult(request: FakeRequest | undefined): string {
  const tools = (request?.body.messages ?? []).filter((m) => m.role === 'tool');
  return tools.at(-1)?.content ?? '';
}
