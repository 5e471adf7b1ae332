import type { Hono } from 'hono';
import { deleteCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import { BerthError } from '../errors/berth-error.js';
import type { Caller } from '../services/caller.js';
import type { TokenService } from '../services/token-service.js';
import { readBody } from './request-body.js';
import { requireSameOrigin, sessionIdOf } from './request-auth.js';
import { MAX_AGE_MS, SESSION_COOKIE, type WebSessions } from './web-sessions.js';

/**
 * The web UI's sign-in: POST /v1/session exchanges a token for the session cookie (the only
 * /v1 route that needs no authentication), GET /v1/session says who is signed in and gives the
 * CSRF token, DELETE /v1/session signs out. See web-sessions.ts for the threat model.
 */

type Env = { Variables: { requestId: string; caller: Caller } };

export const sessionBody = z.strictObject({
  token: z.string().min(1).max(1000).describe('An API token (berth_…)'),
});

export const sessionView = z.object({
  id: z.string(),
  name: z.string(),
  admin: z.boolean(),
  csrfToken: z
    .string()
    .nullable()
    .describe('Send it as the x-berth-csrf header on every request that changes something'),
});

export function registerSessionRoutes(
  app: Hono<Env>,
  tokens: TokenService,
  sessions: WebSessions,
): void {
  app.post('/v1/session', async (c) => {
    // A page on another site must not sign this browser in (with a token of its choosing).
    requireSameOrigin(c.req.raw);
    const body = await readBody(c.req.raw, sessionBody);
    let caller: Caller;
    try {
      caller = await tokens.verify(body.token);
    } catch (error) {
      if (error instanceof BerthError && error.code === 'unauthorized')
        throw new BerthError('unauthorized', 'token not valid');
      throw error;
    }
    const session = sessions.create(body.token);
    setCookie(c, SESSION_COOKIE, session.id, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      secure: new URL(c.req.url).protocol === 'https:',
      maxAge: Math.floor(MAX_AGE_MS / 1000),
    });
    return c.json(
      {
        id: caller.tokenId,
        name: caller.tokenName,
        admin: caller.admin,
        csrfToken: session.csrfToken,
      },
      201,
    );
  });
}

/** GET and DELETE /v1/session: registered after the authentication middleware. */
export function registerSignedInSessionRoutes(app: Hono<Env>, sessions: WebSessions): void {
  app.get('/v1/session', (c) => {
    const caller = c.get('caller');
    const id = sessionIdOf(c.req.raw);
    const session =
      c.req.header('authorization') === undefined && id ? sessions.use(id) : undefined;
    return c.json({
      id: caller.tokenId,
      name: caller.tokenName,
      admin: caller.admin,
      csrfToken: session?.csrfToken ?? null,
    });
  });

  app.delete('/v1/session', (c) => {
    const id = sessionIdOf(c.req.raw);
    if (id !== undefined && c.req.header('authorization') === undefined) sessions.end(id);
    deleteCookie(c, SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'Strict' });
    return c.body(null, 204);
  });
}
