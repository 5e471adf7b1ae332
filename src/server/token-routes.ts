import { checkSlackUserId, requireAdmin } from '../services/token-service.js';
import {
  createdToken,
  requestBodies,
  slackUserLink,
  tokenList,
  whoamiView,
} from './api-schemas.js';
import { readBody } from './request-body.js';
import { pathParam, type RouteDefinition, type RouteDeps } from './route-table.js';
import { views } from './views.js';

/** Who the caller is, and the tokens (admins create, list and revoke them). */
export const tokenRoutes: RouteDefinition<RouteDeps>[] = [
  {
    method: 'get',
    path: '/v1/whoami',
    summary: 'The token this request authenticated with',
    auth: 'token',
    responses: { 200: { description: 'The caller', schema: whoamiView } },
    handler: (c) => {
      const caller = c.get('caller');
      return c.json({ id: caller.tokenId, name: caller.tokenName, admin: caller.admin });
    },
  },
  {
    method: 'get',
    path: '/v1/tokens',
    summary: 'All tokens (admin)',
    auth: 'token',
    responses: { 200: { description: 'Tokens, revoked ones included', schema: tokenList } },
    errors: ['forbidden'],
    handler: async (c, deps) => {
      const list = await deps.tokens.list(c.get('caller'));
      return c.json({ tokens: list.map((token) => views.token(token)) });
    },
  },
  {
    method: 'post',
    path: '/v1/tokens',
    summary: 'Create a token (admin); its value is in this response only',
    auth: 'token',
    body: { schema: requestBodies.createToken },
    responses: { 201: { description: 'The token and its value', schema: createdToken } },
    errors: ['invalid_input', 'forbidden', 'conflict'],
    handler: async (c, deps) => {
      const caller = c.get('caller');
      requireAdmin(caller);
      const body = await readBody(c.req.raw, requestBodies.createToken);
      // A bad Slack user id is refused before the token is made.
      if (body.slackUser !== undefined) checkSlackUserId(body.slackUser);
      const { token, value } = await deps.tokens.create(caller, body.name, body.admin ?? false);
      if (body.slackUser !== undefined)
        await deps.tokens.linkSlackUser(caller, token.id, body.slackUser);
      return c.json(views.createdToken(token, value), 201);
    },
  },
  {
    method: 'post',
    path: '/v1/tokens/:idOrName/slack-user',
    summary: 'Link a Slack user to a token (admin): in Slack they act as this token',
    auth: 'token',
    params: { idOrName: 'A token id (tok_…) or the name of a live token' },
    body: { schema: requestBodies.linkSlackUser },
    responses: { 200: { description: 'The link', schema: slackUserLink } },
    errors: ['invalid_input', 'forbidden', 'not_found'],
    handler: async (c, deps) => {
      const body = await readBody(c.req.raw, requestBodies.linkSlackUser);
      const token = await deps.tokens.linkSlackUser(
        c.get('caller'),
        pathParam(c, 'idOrName'),
        body.slackUser,
      );
      return c.json({ id: token.id, name: token.name, slackUser: body.slackUser });
    },
  },
  {
    method: 'delete',
    path: '/v1/tokens/:idOrName',
    summary: 'Revoke a token (admin)',
    auth: 'token',
    params: { idOrName: 'A token id (tok_…) or the name of a live token' },
    responses: { 204: { description: 'Revoked' } },
    errors: ['forbidden', 'not_found', 'conflict'],
    handler: async (c, deps) => {
      await deps.tokens.revoke(c.get('caller'), pathParam(c, 'idOrName'));
      return c.body(null, 204);
    },
  },
];
