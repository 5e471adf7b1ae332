/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { startTestServer, type ApiResponse, type TestServer } from './api-server.js';

/**
 * A secret's value never comes back: not in any API response (every route, errors included),
 * not in any log line, not in plaintext in the database files. The test also proves the values
 * are really stored (sealed) so the absence is not vacuous.
 */

const FIRST = 'Canary-7f1c9e-Secret-Value-One';
const SECOND = 'Canary-b42d0a-Secret-Value-Two';
const VALUES = [FIRST, SECOND];
const REPO = 'https://git.example/acme/app.git';

function forms(value: string): string[] {
  return [
    value,
    Buffer.from(value).toString('base64'),
    Buffer.from(value).toString('hex'),
    encodeURIComponent(value),
  ];
}

function expectClean(where: string, text: string): void {
  for (const value of VALUES)
    for (const form of forms(value)) expect(text, `${where} contains a secret`).not.toContain(form);
}

describe('secret values never leak', () => {
  let server: TestServer | undefined;
  afterAll(async () => {
    await server?.close();
  });

  it('appear in no response, no log line and not in plaintext in berth.db, -wal or -shm', async () => {
    server = await startTestServer({ logLevel: 'trace' });
    const s = server;
    const responses: [string, ApiResponse][] = [];
    const call = async (
      method: string,
      path: string,
      options: Parameters<TestServer['request']>[2] = {},
    ) => {
      const response = await s.request(method, path, options);
      responses.push([`${method} ${path} -> ${response.status}`, response]);
      return response;
    };
    const member = await s.createToken('member');
    const outsider = await s.createToken('outsider');
    const spec = { name: 'leaky', repository: REPO, setup: 'npm ci', members: ['member'] };

    expect(
      (await call('POST', '/v1/environments', { body: { spec, secrets: { FIRST_TOKEN: FIRST } } }))
        .status,
    ).toBe(201);
    // Every route, and the refusals that carry a secret in their request.
    await call('GET', '/health', { token: null });
    await call('GET', '/openapi.json', { token: null });
    await call('GET', '/v1/whoami');
    await call('GET', '/v1/environments');
    await call('GET', '/v1/environments', { token: member });
    await call('GET', '/v1/environments/leaky');
    await call('GET', '/v1/environments/leaky', { token: member });
    await call('GET', '/v1/environments/leaky', { token: outsider });
    await call('POST', '/v1/environments/validate', { body: { spec } });
    expect(
      (await call('POST', '/v1/environments', { body: { spec, secrets: { FIRST_TOKEN: FIRST } } }))
        .status,
    ).toBe(409);
    expect(
      (
        await call('POST', '/v1/environments', {
          body: { spec: { ...spec, name: 'other', setpu: 1 }, secrets: { X: FIRST } },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call('POST', '/v1/environments', {
          body: { spec: { ...spec, name: 'other' }, secrets: { 'BAD-NAME': FIRST } },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call('POST', '/v1/environments', {
          body: { spec: { ...spec, name: 'other', env: { X: '1' } }, secrets: { X: FIRST } },
        })
      ).status,
    ).toBe(400);
    const updated = await call('PUT', '/v1/environments/leaky', {
      token: member,
      body: { spec: { ...spec, env: { CI: '1' } }, secrets: { SECOND_TOKEN: SECOND } },
    });
    expect(updated.status).toBe(200);
    expect(updated.json.secrets).toEqual(['FIRST_TOKEN', 'SECOND_TOKEN']);
    expect(
      (
        await call('PUT', '/v1/environments/leaky', {
          token: outsider,
          body: { spec, secrets: { X: SECOND } },
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await call('PUT', '/v1/environments/leaky', {
          body: { spec: { ...spec, name: 'renamed' }, secrets: { X: SECOND } },
        })
      ).status,
    ).toBe(400);
    await call('GET', '/v1/tokens');
    await call('POST', '/v1/tokens', { body: { name: 'late' } });
    await call('GET', '/v1/environments/leaky');
    await call('GET', '/v1/nowhere');

    for (const [label, response] of responses) {
      expectClean(label, response.text);
      expectClean(`${label} headers`, JSON.stringify([...response.headers]));
    }
    expect(responses.length).toBeGreaterThan(15);

    // The values are stored, sealed: they open with the server's key.
    const box = SecretBox.load(s.config).box;
    const db = new BetterSqlite3(join(s.dataDir, 'berth.db'), { readonly: true });
    const rows = db
      .prepare(
        'select e.id as id, s.name as name, s.ciphertext as ciphertext from environment_secrets s join environments e on e.id = s.environment_id order by s.name',
      )
      .all() as { id: string; name: string; ciphertext: string }[];
    db.close();
    expect(rows.map((r) => box.open(r.id, r.name, r.ciphertext))).toEqual([FIRST, SECOND]);

    // While running (WAL in use) and after closing, no database file holds a value.
    const files = ['berth.db', 'berth.db-wal', 'berth.db-shm'].map((f) => join(s.dataDir, f));
    const checkFiles = (when: string) => {
      let checked = 0;
      for (const file of files) {
        if (!existsSync(file)) continue;
        checked++;
        expectClean(`${when}: ${file}`, readFileSync(file).toString('latin1'));
      }
      return checked;
    };
    expect(checkFiles('running')).toBeGreaterThanOrEqual(2);
    await s.stop();
    expect(checkFiles('closed')).toBeGreaterThanOrEqual(1);

    // Logs: one line per request, none with a value (trace level, everything the server said).
    expect(s.logs.filter((line) => line.includes('"msg":"request"')).length).toBe(
      responses.length + 2,
    );
    expectClean('log', s.logs.join('\n'));
  });
});
