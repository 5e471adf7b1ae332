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
 * Migration 0013 records where each environment's default branch came from (issue 20 item 1).
 * Rows stored before it: `main` (what was assumed) is `assumed`, any other branch `named`; new
 * rows say what they are given (`named` when nothing is said), and an update keeps it unless it
 * gives one. On SQLite and on a real PostgreSQL, from the schema as it was before (0012).
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the old schema is untyped here
type Raw = Kysely<any>;

interface OldStore {
  raw: Raw;
  open(): Store;
  cleanup(): Promise<void>;
}

const T0 = '2026-01-01T00:00:00.000Z';
const OLD_MIGRATIONS = STORE_MIGRATIONS.filter((m) => m.name <= '0012_z');

async function buildOldShape(raw: Raw): Promise<void> {
  const { error } = await new Migrator({
    db: raw,
    provider: new OrderedMigrationProvider(OLD_MIGRATIONS),
  }).migrateToLatest();
  if (error !== undefined) throw error as Error;
  const environment = (id: string, name: string, repository: unknown) =>
    sql`insert into environments (id, name, spec, created_by_token_id, created_at, updated_at, revision)
        values (${id}, ${name}, ${JSON.stringify(parseEnvironmentSpec({ name, repository }))}, ${null}, ${T0}, ${T0}, ${2})`.execute(
      raw,
    );
  await environment('env_main', 'on-main', 'https://git.example/acme/app.git');
  await environment('env_master', 'on-master', {
    url: 'https://git.example/acme/old.git',
    defaultBranch: 'master',
  });
}

function describeMigration(adapter: string, make: () => Promise<OldStore>): void {
  describe(`default branch origin migration: ${adapter}`, () => {
    it('marks older rows assumed (main) or named (any other), and keeps what it is given', async () => {
      const old = await make();
      let store: Store | undefined;
      try {
        await buildOldShape(old.raw);
        store = old.open();
        await store.migrate();
        expect((await store.getEnvironmentByName('on-main'))?.defaultBranchOrigin).toBe('assumed');
        const master = await store.getEnvironmentByName('on-master');
        expect(master?.defaultBranchOrigin).toBe('named');
        expect(master?.revision).toBe(2);

        const created = await store.createEnvironment({
          id: 'env_new',
          spec: parseEnvironmentSpec({ name: 'new', repository: 'https://git.example/a/b.git' }),
          createdByTokenId: null,
          secrets: [],
          now: T0,
          defaultBranchOrigin: 'assumed',
        });
        expect(created.defaultBranchOrigin).toBe('assumed');
        const plain = await store.createEnvironment({
          id: 'env_plain',
          spec: parseEnvironmentSpec({ name: 'plain', repository: 'https://git.example/a/c.git' }),
          createdByTokenId: null,
          secrets: [],
          now: T0,
        });
        expect(plain.defaultBranchOrigin).toBe('named');
        const change = { spec: created.spec, setSecrets: [], removeSecrets: [], now: T0 };
        expect((await store.updateEnvironment('env_new', change)).defaultBranchOrigin).toBe(
          'assumed',
        );
        const found = await store.updateEnvironment('env_new', {
          ...change,
          defaultBranchOrigin: 'found',
        });
        expect(found.defaultBranchOrigin).toBe('found');
        expect((await store.listEnvironments()).map((e) => e.defaultBranchOrigin)).toEqual([
          'found',
          'assumed',
          'named',
          'named',
        ]);
        // Idempotent.
        await store.migrate();
        expect((await store.getEnvironmentByName('on-main'))?.defaultBranchOrigin).toBe('assumed');
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
  describe('default branch origin migration: PostgresStore', () => {
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
