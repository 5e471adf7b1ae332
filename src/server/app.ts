import { Hono, type Context } from 'hono';
import { BerthError } from '../errors/berth-error.js';
import { newId } from '../domain/ids.js';
import type { Logger } from '../util/logger.js';
import type { Caller } from '../services/caller.js';
import type { EnvironmentService } from '../services/environment-service.js';
import { requireAdmin, type TokenService } from '../services/token-service.js';
import type { TaskService } from '../services/task-service.js';
import { registerTaskRoutes } from './task-routes.js';
import type { ErrorBody } from '../errors/berth-error.js';
import { requestBodies } from './api-schemas.js';
import { buildOpenApiDocument } from './openapi.js';
import { isYamlBody, readBody, readEnvironmentJson, readYamlSpec } from './request-body.js';
import { views } from './views.js';
import { authenticate } from './request-auth.js';
import { registerSessionRoutes, registerSignedInSessionRoutes } from './session-routes.js';
import type { WebUiFiles } from './web-ui-files.js';
import { WebSessions } from './web-sessions.js';
import { serverStatus, type ServerStatusSource } from './server-status.js';

/**
 * The HTTP API (Hono). Routes are thin: parse the body, call a service with the caller, shape
 * the view. Every error leaves as { code, message, details, requestId } with the status from
 * the error registry; one log line per request (method, path, status, requestId, ms), never a
 * body or a header.
 */

export interface AppDependencies {
  environments: EnvironmentService;
  tokens: TokenService;
  /** Tasks need a sandbox runtime; without one the task routes are absent. */
  tasks?: TaskService;
  logger: Logger;
  version: string;
  /** The built web UI, served at `/`; without it only the API answers. */
  webUi?: WebUiFiles;
  /** The web UI's sign-in sessions (a fresh in-memory table by default). */
  sessions?: WebSessions;
  /** What `GET /v1/server` reports (`berth doctor`); without it only the version. */
  serverStatus?: Omit<ServerStatusSource, 'version'>;
}

type Env = { Variables: { requestId: string; caller: Caller } };

export function createApp(deps: AppDependencies): Hono<Env> {
  const { environments, tokens, logger } = deps;
  const sessions = deps.sessions ?? new WebSessions();
  const app = new Hono<Env>();
  let openApi: Record<string, unknown> | undefined;

  const errorResponse = (c: Context<Env>, error: BerthError) => {
    const body: ErrorBody = {
      code: error.code,
      message: error.message,
      details: error.details,
      requestId: c.get('requestId'),
    };
    return c.json(body, error.httpStatus as 400);
  };

  app.use('*', async (c, next) => {
    const started = performance.now();
    const requestId = newId('request');
    c.set('requestId', requestId);
    await next();
    c.header('x-request-id', requestId);
    logger.info(
      {
        requestId,
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
      },
      'request',
    );
  });

  app.onError((error, c) => {
    // The rest of an oversized body is never read: the connection cannot be reused.
    if (error instanceof BerthError && error.code === 'payload_too_large')
      c.header('connection', 'close');
    if (error instanceof BerthError && error.code !== 'internal') return errorResponse(c, error);
    // Unexpected: log it (with the request id) and say as little as possible to the client.
    logger.error({ requestId: c.get('requestId'), err: error }, 'request failed');
    const message =
      error instanceof BerthError
        ? error.message
        : `an internal error occurred (request ${c.get('requestId')})`;
    return errorResponse(c, new BerthError('internal', message));
  });

  app.notFound(
    (c) =>
      deps.webUi?.response(c.req.method, c.req.path) ??
      errorResponse(
        c,
        new BerthError('not_found', `no route ${c.req.method} ${c.req.path}`, {
          method: c.req.method,
          path: c.req.path,
        }),
      ),
  );

  app.get('/health', (c) => c.json({ status: 'ok' as const, version: deps.version }));

  app.get('/openapi.json', (c) => {
    openApi ??= buildOpenApiDocument(deps.version);
    return c.json(openApi);
  });

  // Signing in is the one /v1 route without authentication: it answers before the middleware.
  registerSessionRoutes(app, tokens, sessions);

  app.use('/v1/*', async (c, next) => {
    c.set('caller', await authenticate(c.req.raw, tokens, sessions));
    await next();
  });

  registerSignedInSessionRoutes(app, sessions);

  app.get('/v1/whoami', (c) => {
    const caller = c.get('caller');
    return c.json({ id: caller.tokenId, name: caller.tokenName, admin: caller.admin });
  });

  app.get('/v1/environments', async (c) => {
    const list = await environments.list(c.get('caller'));
    return c.json({ environments: list.map((environment) => views.environment(environment)) });
  });

  // The environment routes take JSON ({ spec, … }) or, with a YAML Content-Type, an
  // environment file as the whole body (the spec alone: secret values need the JSON shape).
  // Either is parsed on the worker thread, off the event loop (request-body.ts).
  const yamlOr = async <T>(request: Request, json: () => Promise<T>) =>
    isYamlBody(request) ? { spec: await readYamlSpec(request) } : json();

  app.post('/v1/environments/validate', async (c) => {
    const body = await yamlOr(c.req.raw, () =>
      readEnvironmentJson(c.req.raw, requestBodies.validate),
    );
    return c.json({ valid: true as const, spec: environments.validate(body.spec) });
  });

  app.post('/v1/environments', async (c) => {
    const body = await yamlOr(c.req.raw, () =>
      readEnvironmentJson(c.req.raw, requestBodies.create),
    );
    const created = await environments.create(c.get('caller'), {
      spec: body.spec,
      secrets: 'secrets' in body ? body.secrets : undefined,
    });
    return c.json(views.environment(created), 201);
  });

  app.get('/v1/environments/:name', async (c) => {
    return c.json(views.environment(await environments.get(c.get('caller'), c.req.param('name'))));
  });

  app.put('/v1/environments/:name', async (c) => {
    const body = await yamlOr(c.req.raw, () =>
      readEnvironmentJson(c.req.raw, requestBodies.update),
    );
    const updated = await environments.update(c.get('caller'), c.req.param('name'), {
      spec: body.spec,
      secrets: 'secrets' in body ? body.secrets : undefined,
      removeSecrets: 'removeSecrets' in body ? body.removeSecrets : undefined,
    });
    return c.json(views.environment(updated));
  });

  app.delete('/v1/environments/:name', async (c) => {
    await environments.delete(c.get('caller'), c.req.param('name'));
    return c.body(null, 204);
  });

  app.get('/v1/server', async (c) =>
    c.json(
      await serverStatus(
        { dataDir: '', minFreeDiskMb: 0, ...deps.serverStatus, version: deps.version },
        c.get('caller').admin && deps.serverStatus !== undefined,
      ),
    ),
  );

  app.get('/v1/tokens', async (c) => {
    const list = await tokens.list(c.get('caller'));
    return c.json({ tokens: list.map((token) => views.token(token)) });
  });

  app.post('/v1/tokens', async (c) => {
    const caller = c.get('caller');
    requireAdmin(caller);
    const body = await readBody(c.req.raw, requestBodies.createToken);
    const { token, value } = await tokens.create(caller, body.name, body.admin ?? false);
    return c.json(views.createdToken(token, value), 201);
  });

  app.delete('/v1/tokens/:idOrName', async (c) => {
    await tokens.revoke(c.get('caller'), c.req.param('idOrName'));
    return c.body(null, 204);
  });

  if (deps.tasks) registerTaskRoutes(app, deps.tasks);

  return app;
}
