/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { startTestServer } from './api-server.js';
import BetterSqlite3 from 'better-sqlite3';

describe('server start and restart', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-restart-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('creates the admin token and the key only on first start; data and secrets survive a restart', async () => {
    const first = await startTestServer({ dataDir });
    expect(first.adminToken).toMatch(/^berth_/);
    expect(statSync(join(dataDir, 'secret.key')).mode & 0o777).toBe(0o600);
    const created = await first.request('POST', '/v1/environments', {
      body: {
        spec: { name: 'kept', repository: 'https://git.example/a.git' },
        secrets: { TOKEN: 'survives-restart' },
      },
    });
    expect(created.status).toBe(201);
    expect(first.logs.join('\n')).toContain('created the admin token');
    await first.stop();

    const second = await startTestServer({ dataDir });
    try {
      expect(second.adminToken).toBe('');
      expect(second.logs.join('\n')).not.toContain('created the admin token');
      const seen = await second.request('GET', '/v1/environments/kept', {
        token: first.adminToken,
      });
      expect(seen.status).toBe(200);
      expect(seen.json.secrets).toEqual(['TOKEN']);
      const tokens = await second.request('GET', '/v1/tokens', { token: first.adminToken });
      expect(tokens.json.tokens).toHaveLength(1);
    } finally {
      await second.stop();
    }
    // The stored value still opens with the (unchanged) key file.
    const db = new BetterSqlite3(join(dataDir, 'berth.db'), { readonly: true });
    const row = db
      .prepare('select environment_id as id, ciphertext from environment_secrets')
      .get() as { id: string; ciphertext: string };
    db.close();
    expect(
      SecretBox.load({ secretKeyFile: join(dataDir, 'secret.key') }).box.open(
        row.id,
        'TOKEN',
        row.ciphertext,
      ),
    ).toBe('survives-restart');
  });

  it('refuses to start with a key file others can read, saying how to fix it', async () => {
    chmodSync(join(dataDir, 'secret.key'), 0o640);
    const error = await startTestServer({ dataDir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BerthError);
    expect((error as BerthError).message).toMatch(/readable by group or others .*chmod 600/);
    chmodSync(join(dataDir, 'secret.key'), 0o600);
  });
});
