import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from '../../../src/client/api-schema.gen';

/**
 * The one way the UI talks to the server: openapi-fetch typed by the types generated from the
 * server's OpenAPI document. Requests go to this origin with the session cookie; every request
 * that may change something carries the session's CSRF token. A 401 means the session ended:
 * listeners (the session provider) send the user to /login.
 */

export const CSRF_HEADER = 'x-berth-csrf';

let csrfToken: string | null = null;
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

type Listener = () => void;
const signedOutListeners = new Set<Listener>();
export function onSignedOut(listener: Listener): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

const reachListeners = new Set<(reachable: boolean) => void>();
let reachable = true;
export function isReachable(): boolean {
  return reachable;
}
export function onReachability(listener: (reachable: boolean) => void): () => void {
  reachListeners.add(listener);
  return () => reachListeners.delete(listener);
}
function setReachable(value: boolean): void {
  if (value === reachable) return;
  reachable = value;
  for (const listener of reachListeners) listener(value);
}

/** An answer other than 2xx: its status and the server's { code, message, details }. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** The server could not be reached (the banner retries). */
export class UnreachableError extends Error {}

const middleware: Middleware = {
  onRequest({ request }) {
    if (csrfToken !== null && !['GET', 'HEAD', 'OPTIONS'].includes(request.method))
      request.headers.set(CSRF_HEADER, csrfToken);
    return request;
  },
  onResponse({ request, response }) {
    setReachable(true);
    const signingIn = request.method === 'POST' && new URL(request.url).pathname === '/v1/session';
    if (response.status === 401 && !signingIn)
      for (const listener of signedOutListeners) listener();
    return response;
  },
  onError() {
    setReachable(false);
    return new UnreachableError('cannot reach the Berth server');
  },
};

export const api = createClient<paths>({
  baseUrl: window.location.origin,
  credentials: 'same-origin',
});
api.use(middleware);

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The body of a 2xx answer, or an ApiError with the server's message. */
export async function unwrap<T>(request: Promise<Outcome<T>>): Promise<T> {
  const { data, error, response } = await request;
  if (response.ok) return data as T;
  const body = (error ?? {}) as { code?: string; message?: string; details?: unknown };
  throw new ApiError(
    response.status,
    body.code ?? 'unknown',
    body.message ?? `the server answered ${response.status}`,
    (body.details as Record<string, unknown> | undefined) ?? {},
  );
}
