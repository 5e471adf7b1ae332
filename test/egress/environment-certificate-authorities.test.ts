import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import { newId } from '../../src/domain/ids.js';
import { EnvironmentCertificateAuthorities } from '../../src/egress/environment-certificate-authorities.js';
import { SecretBox } from '../../src/secrets/secret-box.js';

/** One egress CA per environment, kept in a real SQLite file with its key sealed. */

let dir: string;
let store: SqliteStore;
const key = randomBytes(32);

async function environment(name: string): Promise<string> {
  const id = newId('environment');
  await store.createEnvironment({
    id,
    spec: parseEnvironmentSpec({ name, repository: 'https://git.example/acme/app.git' }),
    createdByTokenId: null,
    secrets: [],
    now: '2026-01-01T00:00:00.000Z',
  });
  return id;
}

/** Every byte of the database (main file, WAL, shared memory). */
function databaseBytes(): Buffer {
  return Buffer.concat(
    readdirSync(dir)
      .filter((f) => f.startsWith('berth'))
      .map((f) => readFileSync(join(dir, f))),
  );
}

/** The base64 body of a PEM (its lines joined), as it would appear if stored in clear. */
function pemBody(pem: string): string[] {
  return pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-egress-cas-'));
  store = SqliteStore.open(dir);
  await store.migrate();
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('EnvironmentCertificateAuthorities', () => {
  it('gives one CA per environment, the same one after a restart, its key sealed at rest', async () => {
    const a = await environment('a');
    const b = await environment('b');
    const cas = new EnvironmentCertificateAuthorities({ store, box: SecretBox.fromKey(key) });
    const [first, second] = await Promise.all([cas.forEnvironment(a), cas.forEnvironment(a)]);
    expect(second.certificatePem).toBe(first.certificatePem);
    const other = await cas.forEnvironment(b);
    expect(other.certificatePem).not.toBe(first.certificatePem);

    // A restart: a new process with the same store and key loads the same CA, which still signs.
    await store.close();
    store = SqliteStore.open(dir);
    const restarted = new EnvironmentCertificateAuthorities({ store, box: SecretBox.fromKey(key) });
    const again = await restarted.forEnvironment(a);
    expect(again.certificatePem).toBe(first.certificatePem);
    expect(again.toPem().privateKeyPem).toBe(first.toPem().privateKeyPem);
    const leaf = await again.leafFor('allowed.test');
    expect(leaf.certificatePem).toContain('BEGIN CERTIFICATE');

    // The database holds the certificates, never a key in clear.
    await store.close();
    const bytes = databaseBytes().toString('latin1');
    expect(bytes).toContain(pemBody(first.certificatePem)[0]);
    expect(bytes).not.toContain('PRIVATE KEY');
    for (const ca of [first, other]) {
      for (const line of pemBody(ca.toPem().privateKeyPem)) expect(bytes).not.toContain(line);
    }
    store = SqliteStore.open(dir);
  });

  it('refuses a stored key under another secret key, and a sealed key moved to another environment', async () => {
    const a = await environment('a');
    const b = await environment('b');
    await new EnvironmentCertificateAuthorities({
      store,
      box: SecretBox.fromKey(key),
    }).forEnvironment(a);
    const wrongKey = new EnvironmentCertificateAuthorities({
      store,
      box: SecretBox.fromKey(randomBytes(32)),
    });
    await expect(wrongKey.forEnvironment(a)).rejects.toThrow(/cannot be decrypted/);

    // Someone with write access to the database copies A's CA row to B: it does not open.
    const stored = await store.getEgressCa(a);
    if (stored === undefined) throw new Error('no CA stored');
    await store.putEgressCaIfAbsent({ ...stored, environmentId: b });
    const cas = new EnvironmentCertificateAuthorities({ store, box: SecretBox.fromKey(key) });
    await expect(cas.forEnvironment(b)).rejects.toThrow(/cannot be decrypted/);
  });

  it('goes with its environment: deleted, a new environment of the same name gets a new CA', async () => {
    const a = await environment('a');
    const cas = new EnvironmentCertificateAuthorities({ store, box: SecretBox.fromKey(key) });
    const before = await cas.forEnvironment(a);
    expect(await store.deleteEnvironment(a)).toBe(true);
    expect(await store.getEgressCa(a)).toBeUndefined();
    const again = await environment('a');
    const after = await cas.forEnvironment(again);
    expect(after.certificatePem).not.toBe(before.certificatePem);
  });

  it('without a store keeps one CA per environment in memory', async () => {
    const cas = new EnvironmentCertificateAuthorities();
    const one = await cas.forEnvironment('env_one');
    expect((await cas.forEnvironment('env_one')).certificatePem).toBe(one.certificatePem);
    expect((await cas.forEnvironment('env_two')).certificatePem).not.toBe(one.certificatePem);
  });
});
