import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { SqlStore } from '../sql/sql-store.js';
import type { Database } from '../sql/database.js';

/**
 * The embedded store: one SQLite file (`berth.db`) in the data directory, in WAL mode with
 * foreign keys on and a busy timeout, so a second process (the CLI's `run`, a backup) waits
 * instead of failing. All queries live in SqlStore; this file only makes the dialect.
 */

export const SQLITE_FILE_NAME = 'berth.db';
const BUSY_TIMEOUT_MS = 5_000;

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

export class SqliteStore extends SqlStore {
  readonly file: string;

  private constructor(db: Kysely<Database>, file: string) {
    super(db, { isUniqueViolation });
    this.file = file;
  }

  /** Opens (creating if needed) `berth.db` in `dataDir`; call `migrate()` before use. */
  static open(dataDir: string): SqliteStore {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return SqliteStore.openFile(join(dataDir, SQLITE_FILE_NAME));
  }

  static openFile(file: string): SqliteStore {
    const database = new BetterSqlite3(file, { timeout: BUSY_TIMEOUT_MS });
    database.pragma('journal_mode = WAL');
    database.pragma('foreign_keys = ON');
    database.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    database.pragma('synchronous = NORMAL');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
    return new SqliteStore(db, file);
  }
}
