import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components, paths } from './api-schema.gen.js';

/**
 * `berth/client`: a typed client of Berth's HTTP API for scripts and the web UI. openapi-fetch
 * typed by the types openapi-typescript generates from /openapi.json (api-schema.gen.ts), so a
 * path, a parameter or a body that the server does not take is a type error. Each call resolves
 * to `{ data }` or `{ error }` (the API's `{ code, message, details, requestId }`), never throws
 * for an HTTP status.
 */

export type { components, paths };
export type BerthClient = Client<paths>;
/** The API's error body. */
export type BerthApiError = components['schemas']['Error'];

export interface BerthClientOptions {
  /** The server, for example `http://127.0.0.1:8420`. */
  baseUrl: string;
  /** An API token (`berth_…`), sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Another fetch (tests, proxies, the CLI's node:http transport); the global one by default. */
  fetch?: ClientOptions['fetch'];
  /** The class requests are built with, for that other fetch; the global `Request` by default. */
  Request?: ClientOptions['Request'];
  /** Headers sent with every request besides the token's (for example `accept`). */
  headers?: Record<string, string>;
}

export function createBerthClient({
  baseUrl,
  token,
  fetch,
  Request,
  headers,
}: BerthClientOptions): BerthClient {
  const all = {
    ...headers,
    ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
  };
  return createClient<paths>({
    baseUrl,
    ...(Object.keys(all).length > 0 ? { headers: all } : {}),
    ...(fetch ? { fetch } : {}),
    ...(Request ? { Request } : {}),
  });
}
