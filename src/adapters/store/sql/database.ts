import type { AttemptUsageTable } from './usage-table.js';
import type { ColumnType } from 'kysely';
import type {
  SlackEventsTable,
  SlackThreadsTable,
  SlackTurnsTable,
  SlackUsersTable,
} from './slack-tables.js';

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
  /** Added by migration 0012: when the cache was last reset by hand (null: not since a build). */
  cache_reset_at: ColumnType<string | null, string | null | undefined, string | null>;
  /** Added by migration 0013: `named`, `found` or `assumed` (see DefaultBranchOrigin). */
  default_branch_origin: ColumnType<string, string | undefined, string>;
}

export interface EnvironmentSecretsTable {
  environment_id: string;
  name: string;
  /** The sealed value (SecretBox); never the value. */
  ciphertext: string;
  created_at: string;
  updated_at: string;
}

/**
 * Who may see an environment besides admins and its creator (migration 0010): token ids, never
 * names, so a token given a revoked token's name inherits nothing.
 */
export interface EnvironmentMembersTable {
  environment_id: string;
  token_id: string;
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

export interface TasksTable {
  id: string;
  environment_id: string;
  prompt: string;
  command: string | null;
  ref_branch: string | null;
  ref_sha: string | null;
  repository: string | null;
  attempt_count: number;
  /** Added by migration 0003; null until an attempt is picked. */
  picked_attempt_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON of the task's agent options (model, limits), or null. */
  agent_options: ColumnType<string | null, string | null | undefined, string | null>;
  /** Added by migration 0011: the submitting token's name (null for older tasks). */
  created_by: ColumnType<string | null, string | null | undefined, string | null>;
  status: string;
  created_at: string;
  updated_at: string;
}

export interface AttemptsTable {
  id: string;
  task_id: string;
  idx: number;
  phase: string;
  /** 0, 1 or null (not known yet). */
  cache_hit: number | null;
  /** JSON text. */
  error: string | null;
  /** JSON text (diff, commands, message, snapshot). */
  result: string | null;
  /** JSON text of a follow-up turn's AttemptFollowUp (migration 0004); null otherwise. */
  follow_up: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** The queue's lease: who runs the attempt and until when (renewed while it runs). */
  lease_owner: string | null;
  lease_expires_at: string | null;
  /** When a cancel was asked for the running attempt (migration 0009); its owner stops it. */
  cancel_requested_at: string | null;
}

export interface AttemptEventsTable {
  attempt_id: string;
  seq: number;
  type: string;
  /** The whole event as JSON text. */
  body: string;
  at: string;
}

export interface CacheEntriesTable {
  id: string;
  environment_id: string;
  key: string;
  /** JSON text of the key's parts (no secret values, see cache-key.ts). */
  parts: string;
  image: string;
  image_id: string;
  size_bytes: number;
  commit_sha: string;
  /** JSON text: names of the variables the setup script exported. */
  export_names: string;
  created_at: string;
  expires_at: string;
}

export interface EgressCasTable {
  environment_id: string;
  certificate_pem: string;
  /** The CA's private key sealed with the SecretBox; never the key in clear. */
  sealed_private_key: string;
  created_at: string;
}

/** A cache entry being built (migration 0007): the builder's claim and its lease. */
export interface CacheBuildsTable {
  environment_id: string;
  key: string;
  owner: string;
  claimed_at: string;
  expires_at: string;
}

/** An attempt's model conversation (migration 0008), for a follow-up to resume. */
export interface AttemptConversationsTable {
  attempt_id: string;
  /** JSON text of the Chat Completions messages (masked and bounded before storing). */
  messages: string;
  updated_at: string;
}

/** A GitHub webhook delivery already taken (migration 0016_github, github-tables.ts). */
export interface GitHubDeliveriesTable {
  delivery_id: string;
  event: string;
  received_at: string;
}

/**
 * A web UI sign-in session (migration 0014): the SHA-256 of the session id (the cookie's value is
 * never stored), the token it stands for, and its times.
 */
export interface WebSessionsTable {
  id_hash: string;
  token_id: string;
  created_at: string;
  used_at: string;
  /** The session ends at this time however much it is used. */
  expires_at: string;
}

export interface Database {
  /** Migration 0018_usage (usage-table.ts). */
  attempt_usage: AttemptUsageTable;
  /** Migration 0016_github (github-tables.ts). */
  github_deliveries: GitHubDeliveriesTable;
  environments: EnvironmentsTable;
  environment_secrets: EnvironmentSecretsTable;
  environment_members: EnvironmentMembersTable;
  tokens: TokensTable;
  tasks: TasksTable;
  attempts: AttemptsTable;
  attempt_events: AttemptEventsTable;
  attempt_conversations: AttemptConversationsTable;
  cache_entries: CacheEntriesTable;
  cache_builds: CacheBuildsTable;
  egress_cas: EgressCasTable;
  /** Migration 0015_slack (slack-tables.ts). */
  slack_events: SlackEventsTable;
  slack_users: SlackUsersTable;
  slack_threads: SlackThreadsTable;
  /** Migration 0015_slack_turns. */
  slack_turns: SlackTurnsTable;
  web_sessions: WebSessionsTable;
}
