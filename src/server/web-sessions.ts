import { randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The web UI's sign-in sessions: a token exchanged once (POST /v1/session) for a random session
 * id that travels only in an HttpOnly, SameSite=Strict cookie, plus a CSRF token the UI sends
 * in a header on every request that changes something.
 *
 * Threat model. Untrusted: every other origin the browser visits (it may make the browser send
 * requests here with the cookie attached, or try to read responses), and script that might run
 * in the UI's origin (the UI renders sandbox text as text and the CSP forbids inline script, so
 * this is defence in depth). Trusted: the server process, which keeps sessions in memory.
 * Guarantees: the session id never appears in a URL, a response body or script-readable storage
 * (HttpOnly); a cross-site request carries no cookie (SameSite=Strict) and, if it somehow did,
 * a change is refused without the per-session CSRF token, which only a same-origin read of
 * GET /v1/session can learn; each use re-checks the token behind the session, so revoking a
 * token ends its sessions at once; sessions expire after IDLE_MS unused and MAX_AGE_MS in all.
 * The cookie is marked `Secure` (sent by the browser over HTTPS only) when the request came over
 * HTTPS or the server's public address (`BERTH_PUBLIC_URL`) is `https:`: behind a proxy that ends
 * TLS the server sees plain HTTP, and the setting says what the browser sees. `X-Forwarded-Proto`
 * is not read: any client may send it, and the server has no list of proxies to trust.
 * Not built: sessions do not survive a restart and are not shared between servers on one
 * PostgreSQL (a restart signs everyone out of the UI).
 */

export const SESSION_COOKIE = 'berth_session';
export const CSRF_HEADER = 'x-berth-csrf';
/** A session unused this long ends. */
export const IDLE_MS = 8 * 60 * 60 * 1000;
/** No session lives longer than this. */
export const MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** Live sessions kept at most (the oldest go first): bounds memory under sign-in floods. */
const MAX_SESSIONS = 10_000;

export interface WebSession {
  id: string;
  /** The API token the session stands for, checked again on every use. */
  token: string;
  csrfToken: string;
  createdAt: number;
  usedAt: number;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

export class WebSessions {
  private readonly sessions = new Map<string, WebSession>();

  constructor(
    private readonly now: () => number = () => Date.now(),
    private readonly options: { publicUrl?: string | undefined } = {},
  ) {}

  /** Whether the session cookie set in answer to a request to this URL is marked `Secure`. */
  cookieSecure(requestUrl: string): boolean {
    const https = (url: string | undefined) => url !== undefined && /^https:/i.test(url);
    return https(requestUrl) || https(this.options.publicUrl);
  }

  create(token: string): WebSession {
    const at = this.now();
    const session: WebSession = {
      id: randomBytes(32).toString('base64url'),
      token,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: at,
      usedAt: at,
    };
    this.sessions.set(session.id, session);
    while (this.sessions.size > MAX_SESSIONS) {
      const oldest = this.sessions.keys().next();
      if (oldest.done) break;
      this.sessions.delete(oldest.value);
    }
    return session;
  }

  /** The live session with this id (its use recorded), or undefined when unknown or expired. */
  use(id: string): WebSession | undefined {
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const at = this.now();
    if (at - session.usedAt > IDLE_MS || at - session.createdAt > MAX_AGE_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    session.usedAt = at;
    return session;
  }

  /** Whether a request's CSRF header matches the session's token. */
  csrfMatches(session: WebSession, header: string | undefined): boolean {
    return header !== undefined && sameSecret(session.csrfToken, header);
  }

  end(id: string): void {
    this.sessions.delete(id);
  }
}
