import type { IncomingMessage, RequestOptions } from 'node:http';
import { BerthError } from '../errors/berth-error.js';

/**
 * The CLI's transport under `berth/client` (openapi-fetch): a `Request` class and a `fetch`
 * function over node:http(s), one request per connection (no keep-alive), given to
 * `createBerthClient`. Not Node's `fetch`: in Node 20 the first touch of `fetch`, `Request`,
 * `Response`, `Headers` or `FormData` loads undici, which costs a command about as long again as
 * Node's own start (docs/benchmarks.md, CLI start-up), and the CLI makes one or two requests and
 * exits.
 *
 * openapi-fetch itself builds each request's headers with the global `Headers` (and checks a
 * body against the global `FormData`), synchronously, before it calls `fetch`. `withoutUndici`
 * runs that synchronous part with `Headers` and `FormData` standing for two small local classes
 * and puts Node's own properties back before anything else runs (JavaScript runs one thing at a
 * time, so no other code sees them); test/cli/cli-client.test.ts checks that `berth task show`
 * does not load undici.
 *
 * What the server answers is read whole and must be JSON (or empty), else the call fails with
 * "the server answered N with a body that is not JSON"; an `Accept: text/event-stream` request
 * that the server answers 2xx gets the stream as it comes (`parseAs: 'stream'`). A connection
 * that fails is `server_unreachable`, naming the server.
 */

/** Header names are case-insensitive; the CLI's requests carry a handful. */
class SmallHeaders {
  private readonly map = new Map<string, string>();

  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  set(name: string, value: string): void {
    this.map.set(name.toLowerCase(), String(value));
  }
  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const had = this.map.get(key);
    this.map.set(key, had === undefined ? String(value) : `${had}, ${value}`);
  }
  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }
  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }
  entries(): IterableIterator<[string, string]> {
    return this.map.entries();
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.map.entries();
  }
}

/** No CLI request has a form body: nothing is an instance of this. */
class NoFormData {}

const SWAPPED = ['Headers', 'FormData'] as const;

/**
 * `call()`'s synchronous part run with the small `Headers` and `FormData` above, Node's own
 * (lazy, undici-loading) properties restored before it returns.
 */
export function withoutUndici<T>(call: () => T): T {
  const saved = SWAPPED.map((name) => Object.getOwnPropertyDescriptor(globalThis, name));
  const stand = { Headers: SmallHeaders, FormData: NoFormData };
  for (const name of SWAPPED) {
    Object.defineProperty(globalThis, name, {
      value: stand[name],
      configurable: true,
      writable: true,
    });
  }
  try {
    return call();
  } finally {
    SWAPPED.forEach((name, i) => {
      const descriptor = saved[i];
      if (descriptor === undefined) Reflect.deleteProperty(globalThis, name);
      else Object.defineProperty(globalThis, name, descriptor);
    });
  }
}

interface RequestInitLike {
  method?: string;
  headers?: Iterable<[string, string]> | Record<string, string>;
  body?: string | null;
  signal?: AbortSignal | null;
}

/** What openapi-fetch builds a request into (its `Request` option). */
export class HttpRequest {
  readonly url: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
  readonly signal: AbortSignal | undefined;

  constructor(url: string, init: RequestInitLike = {}) {
    this.url = url;
    this.method = (init.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    const given = init.headers ?? {};
    const pairs = Symbol.iterator in given ? [...given] : Object.entries(given);
    for (const [name, value] of pairs) headers[name.toLowerCase()] = value;
    this.headers = headers;
    this.body = typeof init.body === 'string' ? init.body : undefined;
    this.signal = init.signal ?? undefined;
  }
}

/** What the transport answers: the few parts of a `Response` openapi-fetch reads. */
export class HttpResponse {
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };

  constructor(
    readonly status: number,
    headers: IncomingMessage['headers'],
    private readonly textBody: string,
    readonly body: ReadableStream<Uint8Array> | null = null,
  ) {
    this.ok = status >= 200 && status < 300;
    this.headers = {
      get: (name) => {
        const value = headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
      },
    };
  }

  text(): Promise<string> {
    return Promise.resolve(this.textBody);
  }

  json(): Promise<unknown> {
    return Promise.resolve(
      this.textBody === '' ? undefined : (JSON.parse(this.textBody) as unknown),
    );
  }
}

/** A `fetch` for openapi-fetch over node:http(s), for the server at `baseUrl`. */
export function httpFetch(baseUrl: string): (request: HttpRequest) => Promise<HttpResponse> {
  const unreachable = (cause: unknown, streaming: boolean) =>
    new BerthError(
      'server_unreachable',
      streaming
        ? `cannot reach the Berth server at ${baseUrl}`
        : `cannot reach the Berth server at ${baseUrl} (is \`berth serve\` running?)`,
      {},
      { cause },
    );
  return async (request) => {
    const url = new URL(request.url);
    const streaming = request.headers.accept === 'text/event-stream';
    const { request: send } =
      url.protocol === 'https:' ? await import('node:https') : await import('node:http');
    const options: RequestOptions = {
      method: request.method,
      headers: {
        ...request.headers,
        ...(request.body !== undefined
          ? { 'content-length': String(Buffer.byteLength(request.body)) }
          : {}),
      },
      agent: false,
      ...(request.signal ? { signal: request.signal } : {}),
    };
    const incoming = await new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = send(url, options, resolve);
      outgoing.on('error', (error) => reject(unreachable(error, streaming)));
      outgoing.end(request.body);
    });
    const status = incoming.statusCode ?? 0;
    if (streaming && status >= 200 && status < 300) {
      const { Readable } = await import('node:stream');
      const body = Readable.toWeb(incoming) as ReadableStream<Uint8Array>;
      return new HttpResponse(status, incoming.headers, '', body);
    }
    const text = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('error', (error) => reject(unreachable(error, streaming)));
      incoming.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    if (text !== '') {
      try {
        JSON.parse(text);
      } catch {
        throw new BerthError(
          'internal',
          `the server answered ${status} with a body that is not JSON`,
        );
      }
    }
    return new HttpResponse(status, incoming.headers, text);
  };
}
