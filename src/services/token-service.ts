import { createHash, randomBytes } from 'node:crypto';
import { BerthError } from '../errors/berth-error.js';
import { hasPrefix, newId } from '../domain/ids.js';
import type { Store, Token } from '../ports/store.js';
import type { Caller } from './caller.js';

/**
 * API tokens. A token's value (`berth_` + 32 random bytes, base64url) is shown once, when it is
 * made; only its SHA-256 is stored, so a copy of the database does not let anyone in. Only admin
 * tokens may manage tokens. On first start (no live admin token) an admin token is made and its
 * value returned once, for the server to print.
 */

export const TOKEN_PREFIX = 'berth_';
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$/;
/** lastUsedAt is written at most this often per token (a write per request is wasteful). */
const TOUCH_INTERVAL_MS = 60_000;

export interface TokenServiceOptions {
  store: Store;
  now?: () => string;
}

export function hashToken(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** Tokens are managed by admins only: any other caller gets `forbidden` ("admins only"). */
export function requireAdmin(caller: Caller): void {
  if (!caller.admin)
    throw new BerthError(
      'forbidden',
      `admins only: listing, creating and revoking tokens needs an admin token ("${caller.tokenName}" is not one)`,
    );
}

function checkName(name: string): void {
  if (!TOKEN_NAME.test(name) || hasPrefix(name, 'token')) {
    throw new BerthError(
      'invalid_input',
      `name: "${name}" is not a valid token name (1-100 letters, digits, ".", "_", "@", "+" or "-", starting with a letter or digit, not starting with "tok_")`,
      { issues: [{ path: 'name', message: 'not a valid token name' }] },
    );
  }
}

/** A Slack user id as Slack shows it (profile → "Copy member ID"): U0123ABCD, or W… in Enterprise Grid. */
export function checkSlackUserId(value: string): void {
  if (!/^[UW][A-Z0-9]{2,30}$/.test(value))
    throw new BerthError(
      'invalid_input',
      `slackUser: "${value}" is not a Slack user id (it looks like U0123ABCD: in Slack, the person's profile, "Copy member ID")`,
      { issues: [{ path: 'slackUser', message: 'not a Slack user id' }] },
    );
}

export class TokenService {
  private readonly store: Store;
  private readonly now: () => string;

  constructor(options: TokenServiceOptions) {
    this.store = options.store;
    this.now = options.now ?? (() => new Date().toISOString());
  }

  /** Makes a token; the value is in the result only, never stored. */
  async create(
    caller: Caller,
    name: string,
    admin = false,
  ): Promise<{ token: Token; value: string }> {
    requireAdmin(caller);
    return this.make(name, admin);
  }

  /** The caller a token value stands for; `unauthorized` if missing, unknown or revoked. */
  async verify(value: string | undefined): Promise<Caller> {
    if (value === undefined || value === '') {
      throw new BerthError(
        'unauthorized',
        'a token is required: send "Authorization: Bearer <token>"',
      );
    }
    const token = value.startsWith(TOKEN_PREFIX)
      ? await this.store.getTokenByHash(hashToken(value))
      : undefined;
    return this.callerOf(token);
  }

  /**
   * The caller a web UI session's token stands for, by the token's id (a session keeps no token
   * value); `unauthorized` once the token is unknown or revoked.
   */
  async verifyId(id: string): Promise<Caller> {
    const token = await this.store.getTokenById(id);
    return this.callerOf(token);
  }

  /** The caller a found token stands for (its use noted); `unauthorized` if missing or revoked. */
  private async callerOf(token: Token | undefined): Promise<Caller> {
    if (!token) throw new BerthError('unauthorized', 'the token is not valid');
    if (token.revokedAt !== null) throw new BerthError('unauthorized', 'the token was revoked');
    const now = this.now();
    if (
      token.lastUsedAt === null ||
      Date.parse(now) - Date.parse(token.lastUsedAt) >= TOUCH_INTERVAL_MS
    ) {
      await this.store.touchToken(token.id, now);
    }
    return { tokenId: token.id, tokenName: token.name, admin: token.admin };
  }

  async list(caller: Caller): Promise<Token[]> {
    requireAdmin(caller);
    return this.store.listTokens();
  }

  /** Revokes a token by id (`tok_…`) or by the name of a live token. */
  async revoke(caller: Caller, idOrName: string): Promise<Token> {
    requireAdmin(caller);
    const token = hasPrefix(idOrName, 'token')
      ? await this.store.getTokenById(idOrName)
      : await this.store.getActiveTokenByName(idOrName);
    if (!token)
      throw new BerthError('not_found', `token "${idOrName}" not found`, { token: idOrName });
    if (token.revokedAt !== null) return token;
    if (token.admin && (await this.store.countActiveAdminTokens()) <= 1) {
      throw new BerthError(
        'conflict',
        `"${token.name}" is the last admin token; create another admin token before revoking it`,
      );
    }
    const revoked = await this.store.revokeToken(token.id, this.now());
    if (!revoked)
      throw new BerthError('not_found', `token "${idOrName}" not found`, { token: idOrName });
    return revoked;
  }

  /**
   * Links a Slack user (`U…` or `W…`) to a live token (by id or name), replacing the user's earlier
   * link: in Slack that user then acts as the token, with its memberships (docs/slack.md).
   */
  async linkSlackUser(caller: Caller, idOrName: string, slackUserId: string): Promise<Token> {
    requireAdmin(caller);
    checkSlackUserId(slackUserId);
    const token = hasPrefix(idOrName, 'token')
      ? await this.store.getTokenById(idOrName)
      : await this.store.getActiveTokenByName(idOrName);
    if (!token || token.revokedAt !== null)
      throw new BerthError('not_found', `token "${idOrName}" not found`, { token: idOrName });
    await this.store.linkSlackUser(slackUserId, token.id, this.now());
    return token;
  }

  /** Makes an admin token when there is no live one (first start); returns its value once. */
  async ensureAdminToken(): Promise<{ token: Token; value: string } | undefined> {
    if ((await this.store.countActiveAdminTokens()) > 0) return undefined;
    let name = 'admin';
    for (let n = 2; await this.store.getActiveTokenByName(name); n++) name = `admin-${n}`;
    return this.make(name, true);
  }

  private async make(name: string, admin: boolean): Promise<{ token: Token; value: string }> {
    checkName(name);
    const value = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const token = await this.store.createToken({
      id: newId('token'),
      name,
      hash: hashToken(value),
      admin,
      now: this.now(),
    });
    return { token, value };
  }
}
