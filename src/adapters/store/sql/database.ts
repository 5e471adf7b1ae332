import type { ColumnType } from 'kysely';

/**
 * The tables of the SQL store as Kysely sees them. Column types are the portable subset that
 * SQLite and PostgreSQL share: text, integer (booleans as 0/1), times as ISO-8601 text, JSON as
 * text. Later tables (tasks, attempts, events, cache entries) are added here with their
 * migration in migrations.ts.
 */

export interface EnvironmentsTable {
  id: string;
  name: string;
  /** The normalised spec as JSON text. */
  spec: string;
  created_by_token_id: string | null;
  created_at: string;
  updated_at: string;
  revision: number;
}

export interface EnvironmentSecretsTable {
  environment_id: string;
  name: string;
  /** The sealed value (SecretBox); never the value. */
  ciphertext: string;
  created_at: string;
  updated_at: string;
}

export interface TokensTable {
  id: string;
  name: string;
  hash: string;
  /** 0 or 1. */
  admin: ColumnType<number, number, never>;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface Database {
  environments: EnvironmentsTable;
  environment_secrets: EnvironmentSecretsTable;
  tokens: TokensTable;
}
