import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { PostgresStore } from '../../src/adapters/store/postgres/postgres-store.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/ports/store.js';
import { findPostgresBin, startPostgres, type PostgresServer } from './postgres-server.js';

export type OpenStore = () => Promise<{ store: Store; cleanup: () => void }>;

/**
 * Registers a suite once per store adapter: on a SQLite file in a fresh directory, and on a
 * fresh database of a real PostgreSQL server started for the file (skipped, saying why, where
 * the PostgreSQL binaries are missing).
 */
export function describeEachStore(
  title: string,
  suite: (adapter: string, open: OpenStore) => void,
): void {
  suite('SqliteStore', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
    return Promise.resolve({
      store: SqliteStore.open(dir),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    });
  });
  const postgresBin = findPostgresBin();
  if (postgresBin === undefined) {
    describe(`${title}: PostgresStore`, () => {
      it.skip('needs PostgreSQL binaries (apt-get install postgresql); none under /usr/lib/postgresql', () => {});
    });
    return;
  }
  let server: PostgresServer | undefined;
  beforeAll(() => {
    server = startPostgres(postgresBin);
  });
  afterAll(() => {
    server?.stop();
  });
  suite('PostgresStore', async () => {
    if (!server) throw new Error('PostgreSQL did not start');
    const database = await server.createDatabase();
    return {
      store: PostgresStore.connect({ host: server.socketDir, user: server.user, database, max: 5 }),
      cleanup: () => undefined,
    };
  });
}
