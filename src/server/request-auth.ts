import { BerthError } from '../errors/berth-error.js';
import type { Caller } from '../services/caller.js';
import type { TokenService } from '../services/token-service.js';
import {
  CSRF_HEADER,
  SECURE_SESSION_COOKIE,
  SESSION_COOKIE,
  type WebSessions,
} from './web-sessions.js';

/**
 * Who a request comes from: a bearer token (the CLI, scripts) or the web UI's session cookie.
 *
 * Threat model. Untrusted: the request (headers, cookies) and any other origin a signed-in
 * browser visits. Guarantees: a bearer request is judged by its token alone (a cookie beside it
 * is ignored, so the CSRF rules below never affect the CLI); a cookie request is refused when
 * the session is unknown or expired (401), when the token behind it is no longer valid (401,
 * and the session ends), and, for any method that may change something, when its Origin is
 * another origin or its CSRF header does not match the session's (403).
 */

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function bearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match)
    throw new BerthError('unauthorized', 'the Authorization header must be "Bearer <token>"');
  return match[1];
}

/**
 * Refuses a request whose Origin header names another host than the one it was sent to. Hosts
 * (name and port), not whole origins: behind a proxy that ends TLS the server sees http while the
 * browser says https. Another site always has another host.
 */
export function requireSameOrigin(request: Request): void {
  const origin = request.headers.get('origin');
  if (origin === null) return;
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    host = undefined;
  }
  if (!host || host !== new URL(request.url).host)
    throw new BerthError('forbidden', 'a request from another origin may not use a web session', {
      origin,
    });
}

/**
 * The session id in a request's cookie header, if any. More than one session cookie (either
 * name) is refused: another port or subdomain of this host may have set one (cookie tossing),
 * and picking one would sign the user in as someone else, or lock them out.
 */
export function sessionIdOf(request: Request): string | undefined {
  const found: string[] = [];
  for (const pair of (request.headers.get('cookie') ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at < 0) continue;
    const name = pair.slice(0, at).trim();
    if (name === SESSION_COOKIE || name === SECURE_SESSION_COOKIE)
      found.push(pair.slice(at + 1).trim());
  }
  if (found.length > 1)
    throw new BerthError(
      'unauthorized',
      "the browser sent more than one Berth session cookie (another site on this host may have set one): clear this site's cookies and sign in again",
      { session: 'ambiguous' },
    );
  return found[0];
}

export async function authenticate(
  request: Request,
  tokens: TokenService,
  sessions: WebSessions,
): Promise<Caller> {
  const authorization = request.headers.get('authorization') ?? undefined;
  if (authorization !== undefined) return tokens.verify(bearer(authorization));
  const sessionId = sessionIdOf(request);
  if (sessionId === undefined) return tokens.verify(undefined);

  const session = await sessions.use(sessionId);
  if (!session)
    throw new BerthError('unauthorized', 'the session has ended: sign in again', {
      session: 'ended',
    });
  let caller: Caller;
  try {
    caller = await tokens.verifyId(session.tokenId);
  } catch (error) {
    await sessions.end(session.id);
    if (error instanceof BerthError && error.code === 'unauthorized')
      throw new BerthError(
        'unauthorized',
        `the session has ended (${error.message}): sign in again`,
        {
          session: 'ended',
        },
      );
    throw error;
  }
  if (!SAFE_METHODS.has(request.method)) {
    requireSameOrigin(request);
    if (!sessions.csrfMatches(session, request.headers.get(CSRF_HEADER) ?? undefined))
      throw new BerthError(
        'forbidden',
        `a request signed in with the session cookie must carry its ${CSRF_HEADER} header`,
      );
  }
  return caller;
}
