import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/adapters/store/postgres/postgres-store.js';
import {
  OrderedMigrationProvider,
  STORE_MIGRATIONS,
} from '../../src/adapters/store/sql/migrations.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import type { Store } from '../../src/ports/store.js';
import { findPostgresBin, startPostgres, type PostgresServer } from './postgres-server.js';

/**
 * Membership used to be the token names in an environment's `spec.members`, matched against the
 * caller's name, so a new token given a revoked token's name inherited its environments. The
 * migration that binds membership to token ids is run here on a store made with the schema as it
 * was before it (the shipped migrations up to 0009, rows written by hand), on SQLite and on a
 * real PostgreSQL.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the old schema is untyped here
type Raw = Kysely<any>;

interface OldStore {
  raw: Raw;
  open(): Store;
  cleanup(): Promise<void>;
}

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-02T00:00:00.000Z';
const OLD_MIGRATIONS = STORE_MIGRATIONS.filter((m) => m.name <= '0009_z');

function specJson(name: string, members: string[]): string {
  return JSON.stringify(
    parseEnvironmentSpec({ name, repository: 'https://git.example/acme/app.git', members }),
  );
}

async function buildOldShape(raw: Raw): Promise<void> {
  const { error } = await new Migrator({
    db: raw,
    provider: new OrderedMigrationProvider(OLD_MIGRATIONS),
  }).migrateToLatest();
  if (error !== undefined) throw error as Error;
  const token = (id: string, name: string, revokedAt: string | null, admin = 0) =>
    sql`insert into tokens (id, name, hash, admin, created_at, last_used_at, revoked_at)
        values (${id}, ${name}, ${`hash-${id}`}, ${admin}, ${T0}, ${null}, ${revokedAt})`.execute(
      raw,
    );
  await token('tok_admin', 'admin', null, 1);
  await token('tok_alice', 'alice', null);
  await token('tok_bob_old', 'bob', T0);
  await token('tok_bob_new', 'bob', null);
  await token('tok_carol_old', 'carol', T0);
  const environment = (id: string, name: string, members: string[], creator: string | null) =>
    sql`insert into environments (id, name, spec, created_by_token_id, created_at, updated_at, revision)
        values (${id}, ${name}, ${specJson(name, members)}, ${creator}, ${T0}, ${T0}, ${3})`.execute(
      raw,
    );
  await environment('env_shared', 'shared', ['alice', 'bob', 'carol', 'ghost'], 'tok_carol_old');
  await environment('env_plain', 'plain', [], 'tok_alice');
}

function describeMigration(adapter: string, make: () => Promise<OldStore>): void {
  describe(`membership migration: ${adapter}`, () => {
    it("moves name-keyed members to the ids of today's live tokens, and binds them", async () => {
      const old = await make();
      let store: Store | undefined;
      try {
        await buildOldShape(old.raw);
        store = old.open();
        await store.migrate();

        const shared = await store.getEnvironmentByName('shared');
        // Today's access is kept (the live alice and the live bob), nothing more: the revoked
        // carol and a name no token has are not members of anything.
        expect(shared?.members).toEqual([
          { tokenId: 'tok_alice', name: 'alice' },
          { tokenId: 'tok_bob_new', name: 'bob' },
        ]);
        // The spec keeps the names as written (what the API shows is the members above).
        expect(shared?.spec.members).toEqual(['alice', 'bob', 'carol', 'ghost']);
        expect(shared?.revision).toBe(3);
        expect((await store.getEnvironmentByName('plain'))?.members).toEqual([]);
        const rows = await sql<{ environment_id: string; token_id: string }>`
          select environment_id, token_id from environment_members order by token_id`.execute(
          old.raw,
        );
        expect(rows.rows).toEqual([
          { environment_id: 'env_shared', token_id: 'tok_alice' },
          { environment_id: 'env_shared', token_id: 'tok_bob_new' },
        ]);

        // New tokens that take a name in the old list inherit nothing.
        await store.createToken({
          id: 'tok_ghost',
          name: 'ghost',
          hash: 'h-g',
          admin: false,
          now: T1,
        });
        await store.createToken({
          id: 'tok_carol',
          name: 'carol',
          hash: 'h-c',
          admin: false,
          now: T1,
        });
        const after = await store.getEnvironmentByName('shared');
        expect(after?.members.map((m) => m.tokenId)).toEqual(['tok_alice', 'tok_bob_new']);
        expect(
          (await store.listEnvironments()).map((e) => [
            e.spec.name,
            e.members.map((m) => m.tokenId),
          ]),
        ).toEqual([
          ['plain', []],
          ['shared', ['tok_alice', 'tok_bob_new']],
        ]);

        // Revoking a member drops it; its name given out again grants nothing.
        await store.revokeToken('tok_bob_new', T1);
        await store.createToken({
          id: 'tok_bob_3',
          name: 'bob',
          hash: 'h-b3',
          admin: false,
          now: T1,
        });
        const revoked = await store.getEnvironmentByName('shared');
        expect(revoked?.members).toEqual([{ tokenId: 'tok_alice', name: 'alice' }]);

        // Idempotent: a second run changes nothing.
        await store.migrate();
        expect((await store.getEnvironmentByName('shared'))?.members).toEqual([
          { tokenId: 'tok_alice', name: 'alice' },
        ]);
      } finally {
        await store?.close();
        await old.cleanup();
      }
    });
  });
}

describeMigration('SqliteStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
  const file = join(dir, 'berth.db');
  const raw: Raw = new Kysely({
    dialect: new SqliteDialect({ database: new BetterSqlite3(file) }),
  });
  return Promise.resolve({
    raw,
    open: () => SqliteStore.openFile(file),
    cleanup: async () => {
      await raw.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

const postgresBin = findPostgresBin();
if (postgresBin === undefined) {
  describe('membership migration: PostgresStore', () => {
    it.skip('needs PostgreSQL binaries (apt-get install postgresql); none under /usr/lib/postgresql', () => {});
  });
} else {
  let server: PostgresServer | undefined;
  beforeAll(() => {
    server = startPostgres(postgresBin);
  });
  afterAll(() => {
    server?.stop();
  });
  describeMigration('PostgresStore', async () => {
    if (!server) throw new Error('PostgreSQL did not start');
    const { socketDir, user } = server;
    const database = await server.createDatabase();
    const raw: Raw = new Kysely({
      dialect: new PostgresDialect({
        pool: new pg.Pool({ host: socketDir, user, database, max: 2 }),
      }),
    });
    return {
      raw,
      open: () => PostgresStore.connect({ host: socketDir, user, database, max: 5 }),
      cleanup: () => raw.destroy(),
    };
  });
}
