import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { USAGE_GROUPINGS } from '../domain/usage/attempt-usage.js';
import { BerthError } from '../errors/berth-error.js';
import type { BerthMetrics } from '../metrics/berth-metrics.js';
import type { TokenService } from '../services/token-service.js';
import type { UsageService } from '../usage/usage-service.js';
import type { ApiEnv, RouteDefinition } from './route-table.js';
import type { Context } from 'hono';

/**
 * What a Berth costs and does (issue 17 items 4 and 5): `GET /metrics` in Prometheus' text format
 * and `GET /v1/usage`, the attempts' usage added up.
 *
 * Threat model for /metrics. Untrusted: the request. The figures tell how busy the server is and
 * what its sandboxes did (no prompt, secret or file name is in them), so only an admin token or
 * the separate `BERTH_METRICS_TOKEN` (a scraper need not hold an admin token) may read them:
 * without a bearer token 401, an unknown or revoked one 401, a token that is no admin 403. The
 * metrics token is compared in constant time (as hashes, so its length does not show either) and
 * opens nothing else: it is no API token.
 */

const usageFigures = {
  attempts: z.number().int(),
  inputTokens: z.number().int().describe("the model's prompt tokens"),
  outputTokens: z.number().int().describe("the model's completion tokens"),
  cpuSeconds: z.number().describe("the sandboxes' CPU time (the engine's statistics)"),
  peakMemoryBytes: z.number().int().describe("the largest of the sandboxes' peak memory"),
  wallSeconds: z.number().describe('the attempts’ time from their start to their end, added up'),
};

export const usageReportView = z.object({
  from: z.string(),
  to: z.string(),
  by: z.enum(USAGE_GROUPINGS),
  groups: z.array(
    z.object({
      key: z
        .string()
        .describe(
          'the environment id, the token name ("(unknown)" for tasks older than names) or the UTC day',
        ),
      name: z.string().optional().describe("the environment's name (by=environment)"),
      ...usageFigures,
    }),
  ),
  total: z.object(usageFigures),
});

export interface UsageRouteDeps {
  usage: UsageService;
  metrics: BerthMetrics;
  tokens: TokenService;
  /** `BERTH_METRICS_TOKEN`; without it only admin tokens read /metrics. */
  metricsToken?: string | undefined;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Refuses a /metrics request without an admin token or the metrics token. */
async function authorizeMetrics(c: Context<ApiEnv>, deps: UsageRouteDeps): Promise<void> {
  const header = c.req.header('authorization');
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1])
    throw new BerthError(
      'unauthorized',
      'GET /metrics needs "Authorization: Bearer <token>": an admin token or BERTH_METRICS_TOKEN',
    );
  const value = match[1];
  if (deps.metricsToken !== undefined && timingSafeEqual(digest(value), digest(deps.metricsToken)))
    return;
  const caller = await deps.tokens.verify(value);
  if (!caller.admin)
    throw new BerthError(
      'forbidden',
      'GET /metrics is for admin tokens and BERTH_METRICS_TOKEN; this token is no admin',
    );
}

/** `/metrics` answers before the /v1 middleware (it checks its own token); `/v1/usage` after. */
export const metricsRoutes: RouteDefinition<UsageRouteDeps>[] = [
  {
    method: 'get',
    path: '/metrics',
    summary:
      'Prometheus metrics in the text format (text/plain; version=0.0.4): needs a bearer admin token or BERTH_METRICS_TOKEN (docs/operations.md lists them)',
    auth: 'none',
    responses: { 200: { description: 'The metrics, in Prometheus text format' } },
    errors: ['unauthorized', 'forbidden'],
    handler: async (c, deps) => {
      await authorizeMetrics(c, deps);
      const { contentType, text } = await deps.metrics.scrape();
      return c.body(text, 200, { 'content-type': contentType, 'cache-control': 'no-store' });
    },
  },
];

export const usageRoutes: RouteDefinition<UsageRouteDeps>[] = [
  {
    method: 'get',
    path: '/v1/usage',
    summary:
      "What the attempts that finished in [from, to) used, added up by environment, token or UTC day (an admin sees every environment's, another token the environments it may see)",
    auth: 'token',
    query: {
      from: 'A UTC date (2026-12-01) or an ISO-8601 time with its zone; default: 7 days before to',
      to: 'The same forms; default: now',
      by: 'environment (default), token or day',
    },
    responses: { 200: { description: 'The usage', schema: usageReportView } },
    errors: ['invalid_input'],
    handler: async (c, deps) =>
      c.json(
        await deps.usage.report(c.get('caller'), {
          from: c.req.query('from'),
          to: c.req.query('to'),
          by: c.req.query('by'),
        }),
      ),
  },
];
