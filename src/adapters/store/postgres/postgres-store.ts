import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { SqlStore } from '../sql/sql-store.js';
import type { Database } from '../sql/database.js';

/**
 * The store for several orchestrators: PostgreSQL through a connection pool. All queries and
 * migrations are SqlStore's (the same as SQLite's); this file only makes the dialect.
 *
 * Note: `listEnvironments` orders by name with the database's collation; create the database
 * with `LC_COLLATE 'C'` (or a C locale cluster) for the same order as SQLite.
 */

export interface PostgresStoreOptions {
  /** `postgres://user@host/db`, or use the fields below (a host starting with "/" is a socket directory). */
  connectionString?: string;
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string;
  /** Pool size (default 10). */
  max?: number;
}

/** SQLSTATE 23505: unique_violation. */
function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}

export class PostgresStore extends SqlStore {
  private constructor(db: Kysely<Database>) {
    super(db, { isUniqueViolation });
  }

  /** Connects lazily (the first query opens a connection); call `migrate()` before use. */
  static connect(options: PostgresStoreOptions): PostgresStore {
    const pool = new pg.Pool({
      ...(options.connectionString !== undefined
        ? { connectionString: options.connectionString }
        : {}),
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.database !== undefined ? { database: options.database } : {}),
      ...(options.user !== undefined ? { user: options.user } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      max: options.max ?? 10,
    });
    return new PostgresStore(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }));
  }
}
