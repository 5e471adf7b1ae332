/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-assignment -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';
import { validateResult, writtenEnvironmentView } from '../../src/server/api-schemas.js';

/** Issue 19 item 4 through the API: lint refusals are 400s with the field path; warnings are answered. */

const REPO = 'https://git.example/acme/app.git';

describe('API: allowlist lint', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const spec = (name: string, domains: string[]) => ({
    name,
    repository: REPO,
    internet: { access: 'allowlist', domains },
  });

  it('refuses a wildcard over a public suffix on validate, create and update, storing nothing', async () => {
    for (const [method, path, body] of [
      ['POST', '/v1/environments/validate', { spec: spec('lint', ['*.github.io']) }],
      ['POST', '/v1/environments', { spec: spec('lint', ['api.example.test', '*.workers.dev']) }],
    ] as const) {
      const response = await server.request(method, path, { body });
      expect(response.status, response.text).toBe(400);
      expect(response.json.code).toBe('invalid_environment');
      const issue = response.json.details.issues[0] as { path: string; message: string };
      expect(issue.path).toMatch(/^internet\.domains\[[01]\]$/);
      expect(issue.message).toMatch(/wildcard over a public suffix/);
    }
    const created = await server.request('POST', '/v1/environments', {
      body: { spec: spec('lint', ['api.example.test']) },
    });
    expect(created.status, created.text).toBe(201);
    const update = await server.request('PUT', '/v1/environments/lint', {
      body: { spec: spec('lint', ['*']) },
    });
    expect(update.status, update.text).toBe(400);
    expect(update.json.details.issues[0].path).toBe('internet.domains[0]');
    const stored = await server.request('GET', '/v1/environments/lint');
    expect(stored.json.spec.internet.domains).toEqual(['api.example.test']);
  });

  it('answers warnings on validate, create and update (accepted, with the field path)', async () => {
    const domains = ['api.example.test', 'raw.githubusercontent.com', 'dns.google'];
    const validated = await server.request('POST', '/v1/environments/validate', {
      body: { spec: spec('warned', domains) },
    });
    expect(validated.status, validated.text).toBe(200);
    validateResult.parse(validated.json);
    const paths = (w: { path: string }[]) => w.map((x) => x.path);
    expect(paths(validated.json.warnings)).toEqual(['internet.domains[1]', 'internet.domains[2]']);

    const created = await server.request('POST', '/v1/environments', {
      body: { spec: spec('warned', domains) },
    });
    expect(created.status, created.text).toBe(201);
    writtenEnvironmentView.parse(created.json);
    expect(paths(created.json.warnings)).toEqual(['internet.domains[1]', 'internet.domains[2]']);
    expect(created.json.warnings[1].message).toMatch(/DNS-over-HTTPS/);

    const updated = await server.request('PUT', '/v1/environments/warned', {
      body: { spec: spec('warned', ['storage.googleapis.com']) },
    });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.json.warnings).toEqual([
      { path: 'internet.domains[0]', message: expect.stringMatching(/anybody's content/) },
    ]);

    const clean = await server.request('POST', '/v1/environments/validate', {
      body: { spec: spec('clean', ['api.example.test']) },
    });
    expect(clean.json.warnings).toEqual([]);
  });
});
