import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * The schema's history, oldest first. Append new migrations at the end with the next number;
 * never edit or reorder one that has shipped. Schema builder only (no dialect-specific SQL), so
 * every migration runs unchanged on SQLite and PostgreSQL.
 */

export interface NamedMigration {
  /** `NNNN_what`, strictly increasing. */
  name: string;
  // Kysely's own migration type works on an untyped database (the schema is what is being made).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  up(db: Kysely<any>): Promise<void>;
}

export const STORE_MIGRATIONS: readonly NamedMigration[] = [
  {
    name: '0001_environments_secrets_tokens',
    async up(db) {
      await db.schema
        .createTable('environments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('created_by_token_id', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('environment_secrets')
        .addColumn('environment_id', 'text', (c) =>
          c.notNull().references('environments.id').onDelete('cascade'),
        )
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('ciphertext', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('environment_secrets_pk', ['environment_id', 'name'])
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('admin', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .execute();
      // A name is unique among live tokens; a revoked token's name can be given out again.
      await db.schema
        .createIndex('tokens_active_name')
        .on('tokens')
        .column('name')
        .unique()
        .where(sql.ref('revoked_at'), 'is', null)
        .execute();
    },
  },
];

/** Feeds the ordered list to Kysely's Migrator, refusing a list that is out of order. */
export class OrderedMigrationProvider implements MigrationProvider {
  constructor(private readonly migrations: readonly NamedMigration[] = STORE_MIGRATIONS) {}

  getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    let previous = '';
    for (const migration of this.migrations) {
      if (!/^\d{4}_[a-z0-9_]+$/.test(migration.name) || migration.name <= previous) {
        throw new Error(`store migration "${migration.name}" is misnamed or out of order`);
      }
      previous = migration.name;
      out[migration.name] = { up: (db) => migration.up(db) };
    }
    return Promise.resolve(out);
  }
}
