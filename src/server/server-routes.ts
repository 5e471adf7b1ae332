import { healthView, serverStatusView } from './api-schemas.js';
import { serverStatus } from './server-status.js';
import type { RouteDefinition, RouteDeps } from './route-table.js';

/** Liveness, this API's document, and what `berth doctor` asks of the server. */
export const serverRoutes: RouteDefinition<RouteDeps>[] = [
  {
    method: 'get',
    path: '/health',
    summary: 'Liveness and version',
    auth: 'none',
    responses: { 200: { description: 'The server is up', schema: healthView } },
    handler: (c, deps) => c.json({ status: 'ok' as const, version: deps.version }),
  },
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    auth: 'none',
    responses: { 200: { description: 'OpenAPI 3.1 document' } },
    handler: (c, deps) => c.json(deps.openApiDocument()),
  },
  {
    method: 'get',
    path: '/v1/server',
    summary:
      "What berth doctor checks: the version; for an admin token also the data directory and the engine's free disk against BERTH_MIN_FREE_DISK_MB",
    auth: 'token',
    responses: { 200: { description: 'The server', schema: serverStatusView } },
    handler: async (c, deps) =>
      c.json(
        await serverStatus(
          { dataDir: '', minFreeDiskMb: 0, ...deps.serverStatus, version: deps.version },
          c.get('caller').admin && deps.serverStatus !== undefined,
        ),
      ),
  },
];
