import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import { deleteCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import { BerthError } from '../errors/berth-error.js';
import type { Caller } from '../services/caller.js';
import { readBody } from './request-body.js';
import { requireSameOrigin, sessionIdOf } from './request-auth.js';
import type { RouteDefinition, RouteDeps } from './route-table.js';
import { MAX_AGE_MS } from './web-sessions.js';

/**
 * The web UI's sign-in: POST /v1/session exchanges a token for the session cookie (the only
 * /v1 route that needs no authentication), GET /v1/session says who is signed in and gives the
 * CSRF token, DELETE /v1/session signs out. See web-sessions.ts for the threat model.
 */

/** The client's address as the socket saw it (undefined outside the Node server). */
function clientAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

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

export const sessionRoutes: RouteDefinition<RouteDeps>[] = [
  {
    method: 'post',
    path: '/v1/session',
    summary:
      "The web UI's sign-in: a token exchanged for an HttpOnly, SameSite=Strict session cookie (berth_session; __Host-berth_session over HTTPS); a wrong token answers 401 'token not valid'; 429 after too many sign-ins",
    // Signing in is the one /v1 route without authentication: it answers before the middleware.
    auth: 'none',
    body: { schema: sessionBody },
    responses: { 201: { description: 'Signed in; the cookie is set', schema: sessionView } },
    errors: ['invalid_input', 'forbidden', 'unauthorized', 'too_many_requests', 'internal'],
    handler: async (c, deps) => {
      // A page on another site must not sign this browser in (with a token of its choosing).
      requireSameOrigin(c.req.raw);
      const body = await readBody(c.req.raw, sessionBody);
      deps.sessions.countSignIn(body.token, clientAddress(c));
      let caller: Caller;
      try {
        caller = await deps.tokens.verify(body.token);
      } catch (error) {
        if (error instanceof BerthError && error.code === 'unauthorized')
          throw new BerthError('unauthorized', 'token not valid');
        throw error;
      }
      const session = await deps.sessions.create(caller.tokenId);
      setCookie(c, deps.sessions.cookieName(c.req.url), session.id, {
        httpOnly: true,
        sameSite: 'Strict',
        path: '/',
        secure: deps.sessions.cookieSecure(c.req.url),
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
    },
  },
  {
    method: 'get',
    path: '/v1/session',
    summary:
      'Who is signed in, and the CSRF token a cookie-authenticated change must send as x-berth-csrf',
    auth: 'token',
    responses: { 200: { description: 'The caller', schema: sessionView } },
    handler: async (c, deps) => {
      const caller = c.get('caller');
      const id = sessionIdOf(c.req.raw);
      const session =
        c.req.header('authorization') === undefined && id ? await deps.sessions.use(id) : undefined;
      return c.json({
        id: caller.tokenId,
        name: caller.tokenName,
        admin: caller.admin,
        csrfToken: session?.csrfToken ?? null,
      });
    },
  },
  {
    method: 'delete',
    path: '/v1/session',
    summary: 'Sign out: the session ends and its cookie is cleared',
    auth: 'token',
    responses: { 204: { description: 'Signed out' } },
    errors: ['forbidden'],
    handler: async (c, deps) => {
      const id = sessionIdOf(c.req.raw);
      if (id !== undefined && c.req.header('authorization') === undefined)
        await deps.sessions.end(id);
      deleteCookie(c, deps.sessions.cookieName(c.req.url), {
        path: '/',
        httpOnly: true,
        sameSite: 'Strict',
        secure: deps.sessions.cookieSecure(c.req.url),
      });
      return c.body(null, 204);
    },
  },
];
