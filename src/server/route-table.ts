import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import { BerthError, type ErrorCode } from '../errors/berth-error.js';
import type { Caller } from '../services/caller.js';
import type { StreamSlots } from './stream-slots.js';
import type { EnvironmentService } from '../services/environment-service.js';
import type { TaskService } from '../services/task-service.js';
import type { TokenService } from '../services/token-service.js';
import type { ServerStatusSource } from './server-status.js';
import type { Logger } from '../util/logger.js';
import type { WebSessions } from './web-sessions.js';

/**
 * The API's routes as data: each route is declared once, with its method, path, what it takes
 * and answers (zod schemas), the errors it may give, whether it needs a token, and its handler.
 * The server mounts the routes on Hono from these declarations (mountRoutes) and /openapi.json is
 * generated from the same declarations (openapi.ts), so the two cannot list different routes.
 */

export type ApiEnv = {
  Variables: {
    requestId: string;
    caller: Caller;
    /** Authenticates the request again (a long-lived stream: the token may be revoked since). */
    recheck: () => Promise<Caller>;
  };
};

export type RouteMethod = 'get' | 'post' | 'put' | 'delete';

export interface RouteResponse {
  description: string;
  /** The JSON body (documented as zod's output form); none for an empty body. */
  schema?: z.ZodType;
  /** With `Accept: text/event-stream`, the route answers a server-sent event stream instead. */
  eventStream?: boolean;
}

/** What the document shows of a route: everything but the handler. */
export interface RouteDoc {
  method: RouteMethod;
  /** Hono's form: `/v1/tasks/:id` (the document writes `/v1/tasks/{id}`). */
  path: string;
  summary: string;
  /**
   * `none`: answers without authentication (before the /v1 middleware); `token`: a bearer token
   * or the web UI's session cookie (request-auth.ts), and may answer 401.
   */
  auth: 'none' | 'token';
  /** A description of each path parameter, by name. */
  params?: Record<string, string>;
  /** Query parameters: name and description (all optional strings). */
  query?: Record<string, string>;
  /** The JSON body (documented as zod's input form); `environmentFile`: YAML is taken too. */
  body?: { schema: z.ZodType; environmentFile?: boolean };
  responses: Record<number, RouteResponse>;
  /** The error codes the route may answer with (401 and 500 are added for `token` routes). */
  errors?: readonly ErrorCode[];
}

export interface RouteDefinition<D> extends RouteDoc {
  handler(c: Context<ApiEnv>, deps: D): Response | Promise<Response>;
}

/** What the handlers of the environment, token, session and server routes use. */
export interface RouteDeps {
  environments: EnvironmentService;
  tokens: TokenService;
  sessions: WebSessions;
  version: string;
  /** What `GET /v1/server` reports (`berth doctor`); without it only the version. */
  serverStatus?: Omit<ServerStatusSource, 'version'>;
  /** The document /openapi.json serves. */
  openApiDocument: () => Record<string, unknown>;
}

/** What the task routes' handlers use. */
export interface TaskRouteDeps {
  tasks: TaskService;
  now: () => Date;
  /** Open `GET /v1/tasks/events` streams, per token and per server (stream-slots.ts). */
  taskStreams: StreamSlots;
  logger?: Logger;
}

/** A path parameter of the request (Hono has matched it, so it is there). */
export function pathParam(c: Context<ApiEnv>, name: string): string {
  const value: string | undefined = c.req.param(name);
  if (value === undefined) throw new BerthError('internal', `no path parameter ${name}`);
  return value;
}

/** `/v1/tasks/:id` as OpenAPI writes it: `/v1/tasks/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** The names of a path's parameters, in order. */
export function pathParamNames(path: string): string[] {
  return [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1] ?? '');
}

/** Registers each route's handler on the app, in order. */
export function mountRoutes<D>(
  app: Hono<ApiEnv>,
  routes: readonly RouteDefinition<D>[],
  deps: D,
): void {
  for (const route of routes) {
    app.on(route.method.toUpperCase(), route.path, (c) => route.handler(c, deps));
  }
}
