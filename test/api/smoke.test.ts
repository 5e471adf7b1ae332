/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';

describe('API smoke', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('serves health, whoami and an environment round trip', async () => {
    const health = await server.request('GET', '/health', { token: null });
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok', version: expect.any(String) });
    expect(health.headers.get('x-request-id')).toMatch(/^req_/);

    expect(server.adminToken).toMatch(/^berth_[A-Za-z0-9_-]{43}$/);
    const me = await server.request('GET', '/v1/whoami');
    expect(me.json).toEqual({ id: expect.stringMatching(/^tok_/), name: 'admin', admin: true });

    const created = await server.request('POST', '/v1/environments', {
      body: {
        spec: { name: 'app', repository: 'https://git.example/acme/app.git', setup: 'npm ci' },
        secrets: { NPM_TOKEN: 'abcd1234' },
      },
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ name: 'app', secrets: ['NPM_TOKEN'], revision: 1 });
    expect(created.json.spec.setup).toEqual({ script: 'npm ci', strict: true, timeoutMs: 1800000 });
    expect(created.json.spec.secrets).toEqual(['NPM_TOKEN']);

    const list = await server.request('GET', '/v1/environments');
    expect(list.json.environments.map((e: { name: string }) => e.name)).toEqual(['app']);
    const del = await server.request('DELETE', '/v1/environments/app');
    expect(del.status).toBe(204);
    expect((await server.request('GET', '/v1/environments/app')).status).toBe(404);
  });
});
