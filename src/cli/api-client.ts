import type { IncomingMessage, RequestOptions } from 'node:http';
import { BerthError, isErrorCode } from '../errors/berth-error.js';

/**
 * The server's URL as given (flag, variable or login file): an http(s) URL, else `invalid_input`
 * (a typo is bad input, not a server that cannot be reached).
 */
function checkBaseUrl(baseUrl: string): void {
  let url: URL | undefined;
  try {
    url = new URL(baseUrl);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new BerthError(
      'invalid_input',
      `the server URL ${JSON.stringify(baseUrl)} is not an http:// or https:// URL (for example http://127.0.0.1:8420)`,
      { url: baseUrl },
    );
  }
}

/**
 * One request and its whole answer over node:http(s), with no keep-alive. Not fetch: the CLI
 * makes one or two requests and exits, and loading fetch's implementation (undici) costs a
 * command about as long again as Node's own start (docs/benchmarks.md, CLI start-up).
 */
async function send(
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
): Promise<{ ok: boolean; status: number; text: string }> {
  const { request } =
    url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  const options: RequestOptions = {
    method: init.method,
    headers: {
      ...init.headers,
      ...(init.body !== undefined ? { 'content-length': Buffer.byteLength(init.body) } : {}),
    },
    agent: false,
    ...(init.signal ? { signal: init.signal } : {}),
  };
  return new Promise((resolve, reject) => {
    const outgoing = request(url, options, (incoming: IncomingMessage) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('error', reject);
      incoming.on('end', () => {
        const status = incoming.statusCode ?? 0;
        resolve({
          ok: status >= 200 && status < 300,
          status,
          text: Buffer.concat(chunks).toString('utf8'),
        });
      });
    });
    outgoing.on('error', reject);
    outgoing.end(init.body);
  });
}

/** A small JSON client for Berth's HTTP API, used by the CLI. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {
    checkBaseUrl(baseUrl);
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: { ok: boolean; status: number; text: string };
    try {
      response = await send(new URL(path, this.baseUrl), {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      throw new BerthError(
        'server_unreachable',
        `cannot reach the Berth server at ${this.baseUrl} (is \`berth serve\` running?)`,
        {},
        { cause: error },
      );
    }
    const text = response.text;
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new BerthError(
          'internal',
          `the server answered ${response.status} with a body that is not JSON`,
        );
      }
    }
    if (!response.ok) {
      const err = parsed as { code?: unknown; message?: unknown; details?: unknown } | undefined;
      const code = isErrorCode(err?.code) ? err.code : 'internal';
      const message =
        typeof err?.message === 'string' ? err.message : `the server answered ${response.status}`;
      const details =
        err?.details && typeof err.details === 'object'
          ? (err.details as Record<string, unknown>)
          : {};
      throw new BerthError(code, message, details);
    }
    return parsed as T;
  }

  /** Opens a server-sent event stream; yields its raw bytes. */
  async stream(path: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let response: Response;
    try {
      response = await fetch(new URL(path, this.baseUrl), {
        headers,
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      throw new BerthError(
        'server_unreachable',
        `cannot reach the Berth server at ${this.baseUrl}`,
        {},
        { cause: error },
      );
    }
    if (!response.ok || response.body === null) {
      const err = (await response.json().catch(() => undefined)) as
        { code?: unknown; message?: unknown } | undefined;
      throw new BerthError(
        isErrorCode(err?.code) ? err.code : 'internal',
        typeof err?.message === 'string' ? err.message : `the server answered ${response.status}`,
      );
    }
    return response.body;
  }
}
