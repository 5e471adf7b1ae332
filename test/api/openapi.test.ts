/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startTestServer, type TestServer } from './api-server.js';
import { createApp } from '../../src/server/app.js';
import { createLogger } from '../../src/util/logger.js';
import type { AppDependencies } from '../../src/server/app.js';

describe('GET /openapi.json', () => {
  let server: TestServer;
  let doc: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  beforeAll(async () => {
    server = await startTestServer();
    doc = (await server.request('GET', '/openapi.json', { token: null })).json;
  });
  afterAll(async () => {
    await server.close();
  });

  it('is an OpenAPI 3.1 document listing every route', () => {
    expect(doc.openapi).toBe('3.1.0');
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, item]) =>
        Object.keys(item)
          .filter((k) => k !== 'parameters')
          .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        'GET /health',
        'GET /openapi.json',
        'GET /v1/whoami',
        'GET /v1/server',
        'POST /v1/session',
        'GET /v1/session',
        'DELETE /v1/session',
        'GET /v1/environments',
        'POST /v1/environments',
        'POST /v1/environments/validate',
        'GET /v1/environments/{name}',
        'PUT /v1/environments/{name}',
        'DELETE /v1/environments/{name}',
        'GET /v1/tokens',
        'POST /v1/tokens',
        'POST /v1/tokens/{idOrName}/slack-user',
        'DELETE /v1/tokens/{idOrName}',
        'GET /v1/tasks',
        'GET /v1/tasks/events',
        'POST /v1/tasks',
        'GET /v1/tasks/{id}',
        'POST /v1/tasks/{id}/cancel',
        'GET /v1/tasks/{id}/diff',
        'POST /v1/tasks/{id}/pick',
        'POST /v1/tasks/{id}/pr',
        'POST /v1/tasks/{id}/followup',
        'GET /v1/tasks/{id}/attempts/{attempt}/events',
        'GET /v1/environments/{name}/cache',
        'DELETE /v1/environments/{name}/cache',
        'GET /metrics',
        'GET /v1/usage',
        'GET /v1/environments/{name}/resolved',
        'GET /v1/environments/{name}/diff',
        'GET /v1/templates',
        'POST /v1/templates',
        'GET /v1/templates/{name}',
        'PUT /v1/templates/{name}',
        'DELETE /v1/templates/{name}',
      ].sort(),
    );
  });

  it('lists exactly the routes Hono serves (app.routes), and the server answers each one', async () => {
    // The app as the server builds it (the services are not called while routes are mounted).
    const app = createApp({
      environments: {} as AppDependencies['environments'],
      tokens: {} as AppDependencies['tokens'],
      tasks: {} as NonNullable<AppDependencies['tasks']>,
      sessions: {} as AppDependencies['sessions'],
      operations: {} as NonNullable<AppDependencies['operations']>,
      logger: createLogger('silent'),
      version: 'test',
    });
    const served = app.routes
      .filter((route) => route.method !== 'ALL') // middleware (app.use)
      .map((route) => `${route.method} ${route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
    expect(new Set(served).size).toBe(served.length);
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, item]) =>
        Object.keys(item)
          .filter((k) => k !== 'parameters')
          .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(served.sort()).toEqual(documented.sort());

    // And the real server routes each documented one to a handler (never its "no route" 404).
    for (const route of documented) {
      const [method = '', path = ''] = route.split(' ');
      const response = await server.request(method, path.replace(/\{[^}]+\}/g, 'x_missing'), {
        ...(method === 'POST' || method === 'PUT' ? { body: {} } : {}),
      });
      expect({ route, message: response.json?.message }).not.toEqual({
        route,
        message: `no route ${method} ${path.replace(/\{[^}]+\}/g, 'x_missing')}`,
      });
    }
    const unknown = await server.request('GET', '/v1/no-such-route');
    expect(unknown.json.message).toBe('no route GET /v1/no-such-route');
  });

  it("docs/api.md's route table lists exactly the document's routes", () => {
    const docs = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
    const section = docs.slice(docs.indexOf('\n## Routes\n'));
    const table = section.slice(0, section.indexOf('\n\n', section.indexOf('\n|')));
    const listed = [...table.matchAll(/^\| `(GET|POST|PUT|DELETE) ([^`]+)`/gm)].map(
      ([, method, path]) => `${method} ${(path ?? '').replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`,
    );
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, item]) =>
        Object.keys(item)
          .filter((k) => k !== 'parameters')
          .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(listed.sort()).toEqual(documented.sort());
  });

  it('describes bodies from the zod schemas: strict environment input, normalised output, the error shape', () => {
    const create = doc.paths['/v1/environments'].post;
    const body = create.requestBody.content['application/json'].schema;
    expect(body.additionalProperties).toBe(false);
    expect(body.required).toEqual(['spec']);
    expect(body.properties.spec.additionalProperties).toBe(false);
    expect(
      body.properties.spec.properties.repository.anyOf.map((s: { type: string }) => s.type),
    ).toEqual(['string', 'object']);
    expect(body.properties.spec.properties.internet.properties.access.enum).toEqual([
      'off',
      'allowlist',
      'on',
    ]);

    // An environment file as a YAML body, on the three environment routes that take a spec.
    for (const route of [
      create,
      doc.paths['/v1/environments/validate'].post,
      doc.paths['/v1/environments/{name}'].put,
    ]) {
      expect(Object.keys(route.requestBody.content).sort()).toEqual([
        'application/json',
        'application/x-yaml',
        'application/yaml',
        'text/yaml',
      ]);
      expect(route.requestBody.content['application/yaml'].schema).toEqual({
        $ref: '#/components/schemas/EnvironmentFile',
      });
    }
    const file = doc.components.schemas.EnvironmentFile;
    expect(file.additionalProperties).toBe(false);
    expect(file.required).toEqual(expect.arrayContaining(['name', 'repository']));

    const view = create.responses['201'].content['application/json'].schema;
    expect(Object.keys(view.properties).sort()).toEqual([
      'createdAt',
      'id',
      'name',
      'revision',
      'secrets',
      'spec',
      'updatedAt',
      'warnings',
    ]);
    expect(view.properties.spec.properties.repository.type).toBe('object');
    expect(view.properties.spec.properties.setup.required).toEqual([
      'script',
      'strict',
      'timeoutMs',
    ]);

    expect(create.responses['409'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Error',
    });
    const error = doc.components.schemas.Error;
    expect(error.required.sort()).toEqual(['code', 'details', 'message', 'requestId']);
    expect(error.properties.code.enum).toContain('payload_too_large');
    expect(doc.paths['/v1/tokens'].get.responses['403']).toBeDefined();
    expect(
      doc.paths['/v1/tokens'].post.responses['201'].content['application/json'].schema.required,
    ).toContain('token');
  });
});
