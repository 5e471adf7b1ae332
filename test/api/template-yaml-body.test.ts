import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * `POST` and `PUT /v1/templates` take a template as YAML (`content-type: application/yaml`), as the
 * environment routes take an environment file: read as a template, not as an environment (which
 * refused every template for having no `repository`); malformed YAML is refused with its line.
 */

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

const yaml = (method: string, path: string, text: string) =>
  server.request(method, path, { rawBody: text, headers: { 'content-type': 'application/yaml' } });

describe('templates as YAML bodies', () => {
  it('creates and updates a template from YAML; malformed YAML is refused with its line', async () => {
    const created = await yaml(
      'POST',
      '/v1/templates',
      'name: org-yaml\ndescription: from YAML\nimage: minimal\nenv:\n  A: "1"\n',
    );
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ name: 'org-yaml', spec: { description: 'from YAML' } });

    const updated = await yaml(
      'PUT',
      '/v1/templates/org-yaml',
      'name: org-yaml\ndescription: changed\nimage: minimal\n',
    );
    expect(updated.status, updated.text).toBe(200);
    expect(updated.json).toMatchObject({ spec: { description: 'changed' } });

    const malformed = await yaml('POST', '/v1/templates', 'name: bad\nenv: [\n');
    expect(malformed.status).toBe(400);
    expect(malformed.text).toMatch(/line \d+/);

    const notATemplate = await yaml('POST', '/v1/templates', 'name: t2\nrepository: x\n');
    expect(notATemplate.status).toBe(400);
    expect(notATemplate.text).toContain('repository');
  });
});
