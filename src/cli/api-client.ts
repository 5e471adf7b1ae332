import type { ClientOptions } from 'openapi-fetch';
import type { BerthClient } from '../client/berth-client.js';
import { BerthError, isErrorCode } from '../errors/berth-error.js';

/**
 * The CLI's way to the server: `berth/client` (openapi-fetch typed by the generated
 * api-schema.gen.ts, the same client scripts and the web UI's types use) over the CLI's
 * node:http transport (http-transport.ts). `call` turns an answer into its data or a
 * BerthError with the server's code, message and details, so every command fails the same way.
 * The client and its transport are loaded at the first call (`berth --version` loads neither).
 */

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

/** One call's answer as openapi-fetch resolves it. */
interface Answer<D> {
  data?: D;
  error?: unknown;
  response: { status: number };
}

/** The API's error body, as far as it is one. */
function berthErrorOf(status: number, error: unknown): BerthError {
  const body = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    message?: unknown;
    details?: unknown;
  };
  const code = isErrorCode(body.code) ? body.code : 'internal';
  const message = typeof body.message === 'string' ? body.message : `the server answered ${status}`;
  const details =
    body.details && typeof body.details === 'object'
      ? (body.details as Record<string, unknown>)
      : {};
  return new BerthError(code, message, details);
}

export class ApiClient {
  /** The typed client (paths, parameters and bodies checked against the API's types), loaded once. */
  private api: Promise<{ api: BerthClient; run: <T>(call: () => T) => T }> | undefined;

  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {
    checkBaseUrl(baseUrl);
  }

  private typed(): Promise<{ api: BerthClient; run: <T>(call: () => T) => T }> {
    this.api ??= Promise.all([
      import('../client/berth-client.js'),
      import('./http-transport.js'),
    ]).then(([{ createBerthClient }, { HttpRequest, httpFetch, withoutUndici }]) => ({
      api: createBerthClient({
        baseUrl: this.baseUrl.replace(/\/+$/, ''),
        ...(this.token !== undefined ? { token: this.token } : {}),
        headers: { accept: 'application/json' },
        // The transport gives the parts of Request and Response openapi-fetch uses.
        fetch: httpFetch(this.baseUrl) as unknown as ClientOptions['fetch'],
        Request: HttpRequest as unknown as ClientOptions['Request'],
      }),
      run: withoutUndici,
    }));
    return this.api;
  }

  /**
   * One typed call's data (`ask` calls the typed client, e.g.
   * `api => api.GET('/v1/tasks/{id}', { params: { path: { id } } })`), or a BerthError: the
   * server's, `server_unreachable`, or `internal` for an answer that is not JSON.
   */
  async call<D>(ask: (api: BerthClient) => Promise<Answer<D>>): Promise<D> {
    const { api, run } = await this.typed();
    const answer = await run(() => ask(api));
    if (answer.error !== undefined || answer.response.status >= 400)
      throw berthErrorOf(answer.response.status, answer.error);
    return answer.data as D;
  }

  /**
   * A request by method and concrete path, typed by the caller (`T`): the same typed client and
   * transport underneath, for the commands whose calls are not written against the path types
   * yet.
   */
  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    return await this.call<T>(
      (api) =>
        api.request(method.toLowerCase() as 'get', path as '/health', {
          ...(body !== undefined ? { body: body as never } : {}),
          ...(signal ? { signal } : {}),
        }) as Promise<Answer<T>>,
    );
  }

  /**
   * An attempt's live events: the events route with `Accept: text/event-stream` answers a
   * server-sent event stream, read as it comes (openapi-fetch's `parseAs: 'stream'`; the
   * transport hands over the response's body unread).
   */
  async stream(
    taskId: string,
    attemptId: string,
    signal?: AbortSignal,
  ): Promise<AsyncIterable<Uint8Array>> {
    const stream = await this.call((api) =>
      api.GET('/v1/tasks/{id}/attempts/{attempt}/events', {
        params: { path: { id: taskId, attempt: attemptId } },
        headers: { accept: 'text/event-stream' },
        parseAs: 'stream',
        ...(signal ? { signal } : {}),
      }),
    );
    if (stream === null || stream === undefined)
      throw new BerthError('internal', 'the server answered without a stream');
    return stream as AsyncIterable<Uint8Array>;
  }
}
