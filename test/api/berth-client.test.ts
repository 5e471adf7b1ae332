import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startTestServer, type TestServer } from './api-server.js';
import { buildOpenApiDocument } from '../../src/server/openapi.js';
import { createBerthClient } from '../../src/client/berth-client.js';

/**
 * `berth/client` (issue 13, Build 2): its types are generated from the document the server
 * builds (and kept up to date), and the script in docs/api.md runs as written, importing
 * `berth/client` by the package's name, against a real server.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('berth/client', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('its generated types are those of the current document', async () => {
    const generator = (await import(join(ROOT, 'scripts/generate-client-types.js'))) as {
      clientTypesSource: (document: unknown) => Promise<string>;
    };
    const expected = await generator.clientTypesSource(buildOpenApiDocument('0'));
    const committed = readFileSync(join(ROOT, 'src/client/api-schema.gen.ts'), 'utf8');
    // Out of date: run `npx tsc -b && node scripts/generate-client-types.js`.
    expect(committed === expected).toBe(true);
  });

  it('answers { data } or the API error, typed', async () => {
    const berth = createBerthClient({ baseUrl: server.url, token: server.adminToken });
    const me = await berth.GET('/v1/whoami');
    expect(me.data?.admin).toBe(true);
    const missing = await berth.GET('/v1/tasks/{id}', { params: { path: { id: 'task_none' } } });
    expect(missing.response.status).toBe(404);
    expect(missing.error?.code).toBe('not_found');
    const anonymous = await createBerthClient({ baseUrl: server.url }).GET('/v1/environments');
    expect(anonymous.error?.code).toBe('unauthorized');
  });

  it("docs/api.md's script runs as written, importing berth/client by name (the built dist/)", async () => {
    const docs = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
    const section = docs.slice(docs.indexOf('\n## Typed client\n'));
    const script = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    expect(script).toContain("from 'berth/client'");
    // Inside the package, so that Node resolves `berth/client` through package.json "exports".
    mkdirSync(join(ROOT, '.berth-test'), { recursive: true });
    const dir = mkdtempSync(join(ROOT, '.berth-test', 'client-'));
    writeFileSync(join(dir, 'tasks.mjs'), script ?? '');
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [join(dir, 'tasks.mjs')], {
        env: { PATH: process.env.PATH, BERTH_URL: server.url, BERTH_TOKEN: server.adminToken },
      });
      expect(stdout).toBe('signed in as admin\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
