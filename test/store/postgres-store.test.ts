import { afterAll, beforeAll, describe, it } from 'vitest';
import { PostgresStore } from '../../src/adapters/store/postgres/postgres-store.js';
import { describeStoreConformance } from './store-conformance.js';
import { findPostgresBin, startPostgres, type PostgresServer } from './postgres-server.js';

/**
 * The same conformance suite against a real PostgreSQL (Debian's `postgresql` package), started
 * here on a Unix socket. Without the package the suite is skipped with the reason below; the
 * set-up and CI install it.
 */

const bin = findPostgresBin();

if (bin === undefined) {
  describe('Store conformance: PostgresStore', () => {
    it.skip('needs PostgreSQL binaries (apt-get install postgresql); none under /usr/lib/postgresql', () => {});
  });
} else {
  let server: PostgresServer | undefined;
  beforeAll(() => {
    server = startPostgres(bin);
  });
  afterAll(() => {
    server?.stop();
  });

  describeStoreConformance('PostgresStore', () => {
    let database: string | undefined;
    const connect = async () => {
      if (!server) throw new Error('PostgreSQL did not start');
      database ??= await server.createDatabase();
      return PostgresStore.connect({ host: server.socketDir, user: server.user, database, max: 5 });
    };
    return { open: connect, reopen: connect, cleanup: () => Promise.resolve() };
  });
}
