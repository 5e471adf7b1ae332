import { Hono, type Context } from 'hono';
import { BerthError } from '../errors/berth-error.js';
import { newId } from '../domain/ids.js';
import type { Logger } from '../util/logger.js';
import type { EnvironmentService } from '../services/environment-service.js';
import type { TokenService } from '../services/token-service.js';
import type { TaskService } from '../services/task-service.js';
import type { ErrorBody } from '../errors/berth-error.js';
import { buildOpenApiDocument } from './openapi.js';
import { authenticate } from './request-auth.js';
import { environmentRoutes } from './environment-routes.js';
import { mountRoutes, type ApiEnv, type RouteDeps, type RouteDoc } from './route-table.js';
import { serverRoutes } from './server-routes.js';
import { sessionRoutes } from './session-routes.js';
import { taskRoutes } from './task-routes.js';
import { StreamSlots } from './stream-slots.js';
import { TASK_STREAMS_PER_TOKEN, TASK_STREAMS_TOTAL } from './task-change-stream.js';
import { tokenRoutes } from './token-routes.js';
import { metricsRoutes, usageRoutes, type UsageRouteDeps } from './usage-routes.js';
import type { WebUiFiles } from './web-ui-files.js';
import type { WebSessions } from './web-sessions.js';
import type { ServerStatusSource } from './server-status.js';

/**
 * The HTTP API (Hono). Routes are declared as data in *-routes.ts (route-table.ts) and mounted
 * here; the same declarations make /openapi.json (openapi.ts). Routes are thin: parse the body,
 * call a service with the caller, shape the view. Every error leaves as { code, message,
 * details, requestId } with the status from the error registry; one log line per request
 * (method, path, status, requestId, ms), never a body or a header.
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
  /** The web UI's sign-in sessions (kept in the store). */
  sessions: WebSessions;
  /** What `GET /v1/server` reports (`berth doctor`); without it only the version. */
  serverStatus?: Omit<ServerStatusSource, 'version'>;
  /** `GET /metrics` and `GET /v1/usage` (issue 17); without it both are absent. */
  operations?: Omit<UsageRouteDeps, 'tokens'>;
  /**
   * GitHub's webhook (`POST /v1/integrations/github/webhook`), checked by X-Hub-Signature-256
   * instead of a token (src/integrations/github/github-webhook.ts).
   */
  githubWebhook?: (request: Request) => Promise<Response>;
  /**
   * Slack's Events API and interactivity (`POST /v1/integrations/slack/events`), checked by
   * Slack's signature instead of a token (src/integrations/slack/slack-http-events.ts).
   */
  slackEvents?: (request: Request) => Promise<Response>;
}

type Env = ApiEnv;

export function createApp(deps: AppDependencies): Hono<Env> {
  const { tokens, logger } = deps;
  const { sessions } = deps;
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
    // API answers (tokens, diffs, prompts) must not stay in a browser's or a proxy's cache.
    if (c.req.path === '/v1' || c.req.path.startsWith('/v1/'))
      c.header('cache-control', 'no-store');
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

  const routeDeps: RouteDeps = {
    environments: deps.environments,
    tokens: deps.tokens,
    sessions,
    version: deps.version,
    ...(deps.serverStatus ? { serverStatus: deps.serverStatus } : {}),
    openApiDocument: () => (openApi ??= buildOpenApiDocument(deps.version)),
  };
  const signedIn = (route: RouteDoc) => route.auth === 'token';
  const publicOnly = (route: RouteDoc) => route.auth === 'none';

  // The routes without authentication (health, this document, signing in) answer before the
  // middleware; every other route, and any unknown /v1 path, needs a token or the session.
  mountRoutes(app, [...serverRoutes, ...sessionRoutes].filter(publicOnly), routeDeps);
  const operations = deps.operations ? { ...deps.operations, tokens } : undefined;
  // /metrics checks its own bearer token (an admin's or BERTH_METRICS_TOKEN; usage-routes.ts).
  if (operations) mountRoutes(app, metricsRoutes, operations);

  const slackEvents = deps.slackEvents;
  if (slackEvents) app.post('/v1/integrations/slack/events', (c) => slackEvents(c.req.raw));

  const githubWebhook = deps.githubWebhook;
  if (githubWebhook) app.post('/v1/integrations/github/webhook', (c) => githubWebhook(c.req.raw));

  app.use('/v1/*', async (c, next) => {
    c.set('caller', await authenticate(c.req.raw, tokens, sessions));
    c.set('recheck', () => authenticate(c.req.raw, tokens, sessions));
    await next();
  });

  mountRoutes(
    app,
    [...serverRoutes, ...sessionRoutes, ...tokenRoutes, ...environmentRoutes].filter(signedIn),
    routeDeps,
  );
  if (operations) mountRoutes(app, usageRoutes, operations);
  if (deps.tasks)
    mountRoutes(app, taskRoutes, {
      tasks: deps.tasks,
      now: () => new Date(),
      logger,
      taskStreams: new StreamSlots('task streams', TASK_STREAMS_PER_TOKEN, TASK_STREAMS_TOTAL),
    });

  return app;
}
