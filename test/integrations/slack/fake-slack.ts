import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/**
 * A fake Slack for the tests, a real server on loopback speaking Slack's protocols:
 * - the Web API methods Berth calls (`POST /api/METHOD`, form or JSON bodies, the bot token as a
 *   Bearer header): auth.test, chat.postMessage, chat.update, chat.postEphemeral and
 *   apps.connections.open (with the app token), which answers a ws:// URL;
 * - Socket Mode on that URL: `hello`, then `events_api` / `interactive` envelopes that Berth must
 *   acknowledge with their `envelope_id`;
 * - signed HTTP deliveries to Berth's Events API route (`v0` HMAC over `v0:TS:BODY`).
 * Failures can be scripted: a 429 with Retry-After, or the whole Web API down (503).
 */

export const BOT_TOKEN = 'xoxb-test-bot-token';
export const APP_TOKEN = 'xapp-test-app-token';
export const SIGNING_SECRET = 'test-signing-secret';
export const BOT_USER = 'UBERTHBOT';

export interface ApiCall {
  method: string;
  token: string | undefined;
  args: Record<string, unknown>;
  at: number;
}

export interface PostedMessage {
  ts: string;
  channel: string;
  threadTs: string | undefined;
  text: string;
  blocks: Record<string, unknown>[];
  /** Edits of it (chat.update), in order. */
  edits: { text: string; blocks: Record<string, unknown>[] }[];
}

export class FakeSlack {
  readonly calls: ApiCall[] = [];
  readonly messages: PostedMessage[] = [];
  readonly ephemerals: { channel: string; user: string; text: string }[] = [];
  /** Envelope ids Berth acknowledged over the socket. */
  readonly acks: string[] = [];
  /** Method → how many next calls answer 429 (Retry-After: `retryAfterS`). */
  readonly rateLimit = new Map<string, number>();
  retryAfterS = 1;
  /** Every Web API call answers 503 while true. */
  down = false;
  private server: Server;
  private wss: WebSocketServer;
  private sockets = new Set<WebSocket>();
  private nextTs = 1000;
  private waiters: (() => void)[] = [];
  url = '';

  private constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.wss = new WebSocketServer({ server: this.server, path: '/socket' });
    this.wss.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString('utf8')) as { envelope_id?: string };
        if (typeof message.envelope_id === 'string') this.acks.push(message.envelope_id);
        this.notify();
      });
      socket.send(
        JSON.stringify({
          type: 'hello',
          num_connections: 1,
          debug_info: { host: 'fake-slack', approximate_connection_time: 18060 },
          connection_info: { app_id: 'A0FAKE' },
        }),
      );
      this.notify();
    });
  }

  static async start(): Promise<FakeSlack> {
    const fake = new FakeSlack();
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  /** `berth serve`'s variables for the Events API on this fake: bot token, signing secret, API URL. */
  get serverEnv(): Record<string, string> {
    return {
      BERTH_SLACK_BOT_TOKEN: BOT_TOKEN,
      BERTH_SLACK_SIGNING_SECRET: SIGNING_SECRET,
      BERTH_SLACK_API_URL: this.apiUrl,
    };
  }

  get socketCount(): number {
    return this.sockets.size;
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Waits until `check` holds (re-checked on every call or socket message), at most `ms`. */
  async until<T>(check: () => T | undefined | false, ms = 15_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > deadline) throw new Error('FakeSlack.until: timed out');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0] ?? '';
    const args = parseArgs(req.headers['content-type'] ?? '', raw);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    this.calls.push({ method, token, args, at: performance.now() });
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
      this.notify();
    };
    if (this.down) return answer(503, { ok: false, error: 'service_unavailable' });
    const limited = this.rateLimit.get(method) ?? 0;
    if (limited > 0) {
      this.rateLimit.set(method, limited - 1);
      return answer(
        429,
        { ok: false, error: 'ratelimited' },
        { 'retry-after': String(this.retryAfterS) },
      );
    }
    const wantsApp = method === 'apps.connections.open';
    if (token !== (wantsApp ? APP_TOKEN : BOT_TOKEN))
      return answer(200, { ok: false, error: 'invalid_auth' });
    switch (method) {
      case 'auth.test':
        return answer(200, {
          ok: true,
          url: 'https://fake.slack/',
          team: 'Fake Team',
          team_id: 'T0FAKE',
          user: 'berth',
          user_id: BOT_USER,
          bot_id: 'B0BERTH',
        });
      case 'apps.connections.open':
        return answer(200, { ok: true, url: `${this.url.replace(/^http/, 'ws')}/socket?ticket=1` });
      case 'chat.postMessage': {
        const ts = `${this.nextTs++}.000100`;
        this.messages.push({
          ts,
          channel: String(args.channel),
          threadTs: typeof args.thread_ts === 'string' ? args.thread_ts : undefined,
          text: textOf(args.text),
          blocks: blocksOf(args.blocks),
          edits: [],
        });
        return answer(200, { ok: true, channel: args.channel, ts });
      }
      case 'chat.update': {
        const message = this.messages.find((m) => m.ts === args.ts && m.channel === args.channel);
        if (!message) return answer(200, { ok: false, error: 'message_not_found' });
        message.edits.push({ text: textOf(args.text), blocks: blocksOf(args.blocks) });
        return answer(200, { ok: true, channel: args.channel, ts: args.ts });
      }
      case 'chat.postEphemeral':
        this.ephemerals.push({
          channel: String(args.channel),
          user: String(args.user),
          text: textOf(args.text),
        });
        return answer(200, { ok: true, message_ts: `${this.nextTs++}.000200` });
      default:
        return answer(200, { ok: false, error: 'unknown_method' });
    }
  }

  /** Sends an envelope over every open socket; resolves once Berth acknowledged it. */
  async sendEnvelope(type: 'events_api' | 'interactive', payload: unknown): Promise<string> {
    const envelopeId = `env-${Math.random().toString(36).slice(2)}`;
    const text = JSON.stringify({
      envelope_id: envelopeId,
      type,
      payload,
      accepts_response_payload: false,
      retry_attempt: 0,
      retry_reason: '',
    });
    for (const socket of this.sockets) socket.send(text);
    await this.until(() => this.acks.includes(envelopeId));
    return envelopeId;
  }

  /** Messages posted in a thread, in order. */
  thread(channel: string, threadTs: string): PostedMessage[] {
    return this.messages.filter((m) => m.channel === channel && m.threadTs === threadTs);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function parseArgs(contentType: string, raw: string): Record<string, unknown> {
  if (raw === '') return {};
  if (contentType.startsWith('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  return Object.fromEntries(new URLSearchParams(raw));
}

function blocksOf(value: unknown): Record<string, unknown>[] {
  if (typeof value === 'string') return JSON.parse(value) as Record<string, unknown>[];
  return Array.isArray(value) ? (value as Record<string, unknown>[]) : [];
}

/** Every text in a message's blocks, joined (what a person reads). */
export function blockText(blocks: readonly Record<string, unknown>[]): string {
  return (
    JSON.stringify(blocks)
      .match(/"text":"((?:[^"\\]|\\.)*)"/g)
      ?.map((m) => JSON.parse(m.slice(7)) as string)
      .join('\n') ?? ''
  );
}

let eventSeq = 0;

/** An `event_callback` body carrying `event`, with a fresh event_id unless given. */
export function eventCallback(
  event: Record<string, unknown>,
  eventId?: string,
): Record<string, unknown> {
  return {
    token: 'unused-verification-token',
    team_id: 'T0FAKE',
    api_app_id: 'A0FAKE',
    type: 'event_callback',
    event_id: eventId ?? `Ev${Date.now()}${eventSeq++}`,
    event_time: Math.floor(Date.now() / 1000),
    event,
    authorizations: [{ team_id: 'T0FAKE', user_id: BOT_USER, is_bot: true }],
  };
}

let tsSeq = 0;
export function mentionEvent(
  channel: string,
  user: string,
  text: string,
  threadTs?: string,
): Record<string, unknown> {
  const ts = `${1700000000 + tsSeq++}.000${100 + tsSeq}`;
  return {
    type: 'app_mention',
    channel,
    user,
    text,
    ts,
    event_ts: ts,
    team: 'T0FAKE',
    ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
  };
}

/** A `block_actions` payload for a button of `message`. */
let interactions = 0;

export function buttonPayload(
  user: string,
  message: PostedMessage,
  actionId: string,
  value: string,
): Record<string, unknown> {
  return {
    type: 'block_actions',
    team: { id: 'T0FAKE' },
    user: { id: user },
    api_app_id: 'A0FAKE',
    token: 'unused-verification-token',
    container: {
      type: 'message',
      message_ts: message.ts,
      channel_id: message.channel,
      is_ephemeral: false,
      thread_ts: message.threadTs,
    },
    // Slack gives every interaction its own trigger_id.
    trigger_id: `${Date.now()}.${++interactions}.${Math.random().toString(16).slice(2, 10)}`,
    channel: { id: message.channel, name: 'payments' },
    message: {
      type: 'message',
      ts: message.ts,
      thread_ts: message.threadTs,
      text: message.text,
      blocks: message.blocks,
    },
    actions: [
      {
        type: 'button',
        action_id: actionId,
        block_id: 'b1',
        value,
        action_ts: `${Date.now() / 1000}`,
      },
    ],
  };
}

/** Slack's headers for a body signed with `secret` at `timestamp` (seconds). */
export function signedHeaders(
  body: string,
  secret = SIGNING_SECRET,
  timestamp = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const signature = `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  return { 'x-slack-signature': signature, 'x-slack-request-timestamp': String(timestamp) };
}

/** POSTs a signed JSON event (or, with `form`, an interactive payload) to Berth's route. */
export async function deliver(
  berthUrl: string,
  body: unknown,
  options: {
    form?: boolean;
    headers?: Record<string, string>;
    secret?: string;
    timestamp?: number;
  } = {},
): Promise<Response> {
  const text = options.form
    ? `payload=${encodeURIComponent(JSON.stringify(body))}`
    : JSON.stringify(body);
  return fetch(`${berthUrl}/v1/integrations/slack/events`, {
    method: 'POST',
    headers: {
      'content-type': options.form ? 'application/x-www-form-urlencoded' : 'application/json',
      ...signedHeaders(text, options.secret, options.timestamp),
      ...options.headers,
    },
    body: text,
  });
}

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
