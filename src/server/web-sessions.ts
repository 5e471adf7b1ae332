import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BerthError } from '../errors/berth-error.js';
import type { Store } from '../ports/store.js';

/**
 * The web UI's sign-in sessions: a token exchanged once (POST /v1/session) for a random session
 * id that travels only in an HttpOnly, SameSite=Strict cookie, plus a CSRF token the UI sends
 * in a header on every request that changes something.
 *
 * Threat model. Untrusted: every other origin the browser visits (it may make the browser send
 * requests here with the cookie attached, or try to read responses), and script that might run
 * in the UI's origin (the UI renders sandbox text as text and the CSP forbids inline script, so
 * this is defence in depth), and a copy of the store (a backup, a shared PostgreSQL). Trusted: the
 * server process. The store keeps each session as the SHA-256 of its id with its token's id and
 * times (migration 0014), never the id itself, so a copy of the database signs nobody in; the
 * CSRF token is derived from the id (another hash), so nothing about it is stored either.
 * Guarantees: the session id never appears in a URL, a response body or script-readable storage
 * (HttpOnly); a cross-site request carries no cookie (SameSite=Strict) and, if it somehow did,
 * a change is refused without the per-session CSRF token, which only a same-origin read of
 * GET /v1/session can learn; each use re-checks the token behind the session, so revoking a
 * token ends its sessions at once (revoking also deletes their rows); sessions expire after
 * IDLE_MS unused and MAX_AGE_MS in all; signing out deletes the row. Sessions survive a restart
 * and are shared by every server on one PostgreSQL.
 * The cookie is marked `Secure` (sent by the browser over HTTPS only) when the request came over
 * HTTPS or the server's public address (`BERTH_PUBLIC_URL`) is `https:`: behind a proxy that ends
 * TLS the server sees plain HTTP, and the setting says what the browser sees. `X-Forwarded-Proto`
 * is not read: any client may send it, and the server has no list of proxies to trust.
 * Cookie tossing: a page on another port of this host, or on a sibling subdomain, can set a
 * `berth_session` cookie the browser then sends here too (cookies are not isolated by port, and a
 * sibling may set a parent-domain cookie). A request that carries more than one session cookie is
 * refused (401, "clear this site's cookies"), never resolved to one of them; over HTTPS the
 * cookie is `__Host-berth_session`, which the browser accepts only from a secure page of this
 * very host with Path=/ and no Domain.
 * Floods: a token keeps at most MAX_SESSIONS_PER_TOKEN sessions (its oldest ends first), so one
 * token holder signing in again and again cannot end anyone else's session; sign-ins are limited
 * per token and per client address (SIGN_INS_PER_MINUTE), failed ones included.
 * Not built: the sign-in counts are kept in memory, per server.
 */

export const SESSION_COOKIE = 'berth_session';
/** The cookie's name when it is `Secure`: the browser takes it only from this host over HTTPS. */
export const SECURE_SESSION_COOKIE = '__Host-berth_session';
export const CSRF_HEADER = 'x-berth-csrf';
/** A session unused this long ends. */
export const IDLE_MS = 8 * 60 * 60 * 1000;
/** No session lives longer than this. */
export const MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** Sessions one token keeps at most (its oldest ends first). */
export const MAX_SESSIONS_PER_TOKEN = 20;
/** Sign-in attempts allowed per token, and per client address, in any one minute. */
export const SIGN_INS_PER_MINUTE = { token: 20, address: 60 };
/** A session's last use is written at most this often (a write per request is wasteful). */
export const TOUCH_INTERVAL_MS = 60_000;

export interface WebSession {
  id: string;
  /** The id of the API token the session stands for, checked again on every use. */
  tokenId: string;
  csrfToken: string;
  createdAt: number;
  usedAt: number;
}

/** The store's session methods (the whole Store in the server). */
export type WebSessionStore = Pick<
  Store,
  | 'createWebSession'
  | 'getWebSession'
  | 'touchWebSession'
  | 'deleteWebSession'
  | 'deleteExpiredWebSessions'
>;

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** What the store keeps for a session id: its SHA-256, hex. */
export function hashSessionId(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('hex');
}

/** The session's CSRF token: derived from its id (so nothing about it is stored). */
function csrfTokenOf(id: string): string {
  return createHash('sha256').update(`berth csrf\n${id}`, 'utf8').digest('base64url');
}

const iso = (ms: number) => new Date(ms).toISOString();

export class WebSessions {
  /** When each token / client address last tried to sign in (the last minute's times). */
  private readonly signIns = new Map<string, number[]>();
  private lastSweep = 0;

  constructor(
    private readonly store: WebSessionStore,
    private readonly options: { now?: () => number; publicUrl?: string | undefined } = {},
  ) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Whether the session cookie set in answer to a request to this URL is marked `Secure`. */
  cookieSecure(requestUrl: string): boolean {
    const https = (url: string | undefined) => url !== undefined && /^https:/i.test(url);
    return https(requestUrl) || https(this.options.publicUrl);
  }

  /** The session cookie's name for a request to this URL. */
  cookieName(requestUrl: string): string {
    return this.cookieSecure(requestUrl) ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
  }

  /**
   * Counts a sign-in attempt by this token and from this address; refuses (429) past
   * SIGN_INS_PER_MINUTE of either in the last minute.
   */
  countSignIn(token: string, address: string | undefined): void {
    const at = this.now();
    const keys = [`token:${token}`, ...(address ? [`address:${address}`] : [])];
    for (const key of keys) {
      const recent = (this.signIns.get(key) ?? []).filter((t) => at - t < 60_000);
      const limit = key.startsWith('token:')
        ? SIGN_INS_PER_MINUTE.token
        : SIGN_INS_PER_MINUTE.address;
      if (recent.length >= limit) {
        this.signIns.set(key, recent);
        throw new BerthError('too_many_requests', 'too many sign-ins: wait a minute and try again');
      }
    }
    for (const key of keys) {
      const recent = (this.signIns.get(key) ?? []).filter((t) => at - t < 60_000);
      recent.push(at);
      this.signIns.set(key, recent);
    }
    // Forget the quiet keys now and then, so the table stays small.
    if (this.signIns.size > 10_000)
      for (const [key, times] of this.signIns)
        if (times.every((t) => at - t >= 60_000)) this.signIns.delete(key);
  }

  /** A new session for the token with this id, stored (its oldest beyond the limit end). */
  async create(tokenId: string): Promise<WebSession> {
    const at = this.now();
    const id = randomBytes(32).toString('base64url');
    await this.store.createWebSession(
      {
        idHash: hashSessionId(id),
        tokenId,
        createdAt: iso(at),
        usedAt: iso(at),
        expiresAt: iso(at + MAX_AGE_MS),
      },
      MAX_SESSIONS_PER_TOKEN,
    );
    // Expired rows go now and then (a session that was never used again, never signed out).
    if (at - this.lastSweep > 60 * 60 * 1000) {
      this.lastSweep = at;
      await this.store.deleteExpiredWebSessions(iso(at), iso(at - IDLE_MS));
    }
    return { id, tokenId, csrfToken: csrfTokenOf(id), createdAt: at, usedAt: at };
  }

  /** The live session with this id (its use recorded), or undefined when unknown or expired. */
  async use(id: string): Promise<WebSession | undefined> {
    const idHash = hashSessionId(id);
    const stored = await this.store.getWebSession(idHash);
    if (!stored) return undefined;
    const at = this.now();
    const createdAt = Date.parse(stored.createdAt);
    const usedAt = Date.parse(stored.usedAt);
    if (
      at - usedAt > IDLE_MS ||
      at >= Date.parse(stored.expiresAt) ||
      at - createdAt > MAX_AGE_MS
    ) {
      await this.store.deleteWebSession(idHash);
      return undefined;
    }
    if (at - usedAt >= TOUCH_INTERVAL_MS) await this.store.touchWebSession(idHash, iso(at));
    return {
      id,
      tokenId: stored.tokenId,
      csrfToken: csrfTokenOf(id),
      createdAt,
      usedAt: at,
    };
  }

  /** Whether a request's CSRF header matches the session's token. */
  csrfMatches(session: WebSession, header: string | undefined): boolean {
    return header !== undefined && sameSecret(session.csrfToken, header);
  }

  async end(id: string): Promise<void> {
    await this.store.deleteWebSession(hashSessionId(id));
  }
}
