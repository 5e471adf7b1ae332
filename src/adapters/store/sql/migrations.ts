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
  {
    name: '0002_tasks_attempts_events_cache',
    async up(db) {
      await db.schema
        .createTable('tasks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('environment_id', 'text', (c) => c.notNull())
        .addColumn('prompt', 'text', (c) => c.notNull())
        .addColumn('command', 'text')
        .addColumn('ref_branch', 'text')
        .addColumn('ref_sha', 'text')
        .addColumn('repository', 'text')
        .addColumn('attempt_count', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('tasks_environment_created')
        .on('tasks')
        .columns(['environment_id', 'created_at'])
        .execute();
      await db.schema
        .createTable('attempts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
        .addColumn('idx', 'integer', (c) => c.notNull())
        .addColumn('phase', 'text', (c) => c.notNull())
        .addColumn('cache_hit', 'integer')
        .addColumn('error', 'text')
        .addColumn('result', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addColumn('lease_owner', 'text')
        .addColumn('lease_expires_at', 'text')
        .execute();
      await db.schema
        .createIndex('attempts_task')
        .on('attempts')
        .columns(['task_id', 'idx'])
        .execute();
      await db.schema
        .createIndex('attempts_queue')
        .on('attempts')
        .columns(['phase', 'created_at'])
        .execute();
      await db.schema
        .createTable('attempt_events')
        .addColumn('attempt_id', 'text', (c) =>
          c.notNull().references('attempts.id').onDelete('cascade'),
        )
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('attempt_events_pk', ['attempt_id', 'seq'])
        .execute();
      await db.schema
        .createTable('cache_entries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('environment_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('parts', 'text', (c) => c.notNull())
        .addColumn('image', 'text', (c) => c.notNull())
        .addColumn('image_id', 'text', (c) => c.notNull())
        .addColumn('size_bytes', 'bigint', (c) => c.notNull())
        .addColumn('commit_sha', 'text', (c) => c.notNull())
        .addColumn('export_names', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('cache_entries_environment_key')
        .on('cache_entries')
        .columns(['environment_id', 'key', 'created_at'])
        .execute();
    },
  },
  {
    name: '0003_task_picked_attempt',
    async up(db) {
      await db.schema.alterTable('tasks').addColumn('picked_attempt_id', 'text').execute();
    },
  },
  {
    name: '0004_attempt_follow_up',
    async up(db) {
      await db.schema.alterTable('attempts').addColumn('follow_up', 'text').execute();
    },
  },
  {
    name: '0005_task_agent_options',
    async up(db) {
      await db.schema.alterTable('tasks').addColumn('agent_options', 'text').execute();
    },
  },
  {
    name: '0006_egress_cas',
    async up(db) {
      await db.schema
        .createTable('egress_cas')
        .addColumn('environment_id', 'text', (c) => c.primaryKey())
        .addColumn('certificate_pem', 'text', (c) => c.notNull())
        .addColumn('sealed_private_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  {
    name: '0007_cache_builds',
    async up(db) {
      // One row per cache entry being built: who builds it and until when its lease runs.
      await db.schema
        .createTable('cache_builds')
        .addColumn('environment_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('claimed_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('cache_builds_pk', ['environment_id', 'key'])
        .execute();
    },
  },
  {
    name: '0008_attempt_conversations',
    async up(db) {
      // The model conversation of an attempt (JSON of Chat Completions messages, masked and
      // bounded by the agent), for a follow-up to resume. A table of its own keeps attempt reads light.
      await db.schema
        .createTable('attempt_conversations')
        .addColumn('attempt_id', 'text', (c) =>
          c.primaryKey().references('attempts.id').onDelete('cascade'),
        )
        .addColumn('messages', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  {
    name: '0009_attempt_cancel_request',
    async up(db) {
      // A cancel asked on one orchestrator for an attempt another runs: its owner polls for it.
      await db.schema.alterTable('attempts').addColumn('cancel_requested_at', 'text').execute();
    },
  },
  {
    name: '0010_environment_members',
    async up(db) {
      // Membership bound to tokens' identities (issue 18): before this, a token saw every
      // environment whose `spec.members` held its name, so a new token given a revoked token's
      // name inherited its environments. Rows name token ids; the spec keeps the names as written.
      await db.schema
        .createTable('environment_members')
        .addColumn('environment_id', 'text', (c) =>
          c.notNull().references('environments.id').onDelete('cascade'),
        )
        .addColumn('token_id', 'text', (c) => c.notNull().references('tokens.id'))
        .addPrimaryKeyConstraint('environment_members_pk', ['environment_id', 'token_id'])
        .execute();
      await db.schema
        .createIndex('environment_members_token')
        .on('environment_members')
        .column('token_id')
        .execute();
      // Today's rows: each name maps to the live token that holds it now (the one it grants
      // access to today); a name only a revoked token had, or none, grants nothing from now on.
      const live = (await db
        .selectFrom('tokens')
        .select(['id', 'name'])
        .where('revoked_at', 'is', null)
        .execute()) as { id: string; name: string }[];
      const byName = new Map(live.map((token) => [token.name, token.id]));
      const environments = (await db
        .selectFrom('environments')
        .select(['id', 'spec'])
        .orderBy('id')
        .execute()) as { id: string; spec: string }[];
      for (const environment of environments) {
        const members = (JSON.parse(environment.spec) as { members?: unknown }).members;
        const ids = new Set<string>();
        for (const name of Array.isArray(members) ? members : []) {
          const id = typeof name === 'string' ? byName.get(name) : undefined;
          if (id !== undefined) ids.add(id);
        }
        for (const id of ids) {
          await db
            .insertInto('environment_members')
            .values({ environment_id: environment.id, token_id: id })
            .execute();
        }
      }
    },
  },
  {
    name: '0011_task_created_by',
    async up(db) {
      // Who submitted a task: the token's name as it was then (the task list's "who"); older
      // tasks keep null.
      await db.schema.alterTable('tasks').addColumn('created_by', 'text').execute();
    },
  },
  {
    name: '0012_environment_cache_reset',
    async up(db) {
      // When the environment's cache was last reset by hand (`env cache reset`), for the next
      // build's log in whichever process runs it; null once an entry was published since.
      await db.schema.alterTable('environments').addColumn('cache_reset_at', 'text').execute();
    },
  },
  {
    name: '0013_environment_default_branch_origin',
    async up(db) {
      // Where the environment's default branch came from (issue 20 item 1): `named` by the person,
      // `found` on the remote (its HEAD), or `assumed` (`main`, the remote not asked); an attempt
      // asks the remote again for an assumed one before its cache key. Older rows did not keep it:
      // their stored spec always holds a branch, so `main` (what was assumed) counts as
      // `assumed` and any other branch as `named`.
      await db.schema
        .alterTable('environments')
        .addColumn('default_branch_origin', 'text', (c) => c.notNull().defaultTo('named'))
        .execute();
      const environments = (await db
        .selectFrom('environments')
        .select(['id', 'spec'])
        .orderBy('id')
        .execute()) as { id: string; spec: string }[];
      for (const environment of environments) {
        const repository = (JSON.parse(environment.spec) as { repository?: unknown }).repository;
        const branch =
          repository !== null && typeof repository === 'object'
            ? (repository as { defaultBranch?: unknown }).defaultBranch
            : undefined;
        if (branch !== undefined && branch !== 'main') continue;
        await db
          .updateTable('environments')
          .set({ default_branch_origin: 'assumed' })
          .where('id', '=', environment.id)
          .execute();
      }
    },
  },
  {
    name: '0014_web_sessions',
    async up(db) {
      // The web UI's sign-in sessions, so they survive a restart and are shared by every server
      // on one PostgreSQL: only the SHA-256 of the session id (the cookie's value) is kept; the
      // rows of a token go when it is revoked (revokeToken), a row when its session signs out or
      // expires.
      await db.schema
        .createTable('web_sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('token_id', 'text', (c) =>
          c.notNull().references('tokens.id').onDelete('cascade'),
        )
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('web_sessions_token_id')
        .on('web_sessions')
        .columns(['token_id', 'created_at'])
        .execute();
    },
  },
  {
    name: '0015_slack',
    async up(db) {
      // Slack (src/integrations/slack/): event ids already handled (a retried delivery starts
      // nothing, across restarts too), Slack users linked to tokens (a revoked token's link acts
      // for nobody), and the threads that carry a task.
      await db.schema
        .createTable('slack_events')
        .addColumn('event_id', 'text', (c) => c.primaryKey())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('slack_users')
        .addColumn('slack_user_id', 'text', (c) => c.primaryKey())
        .addColumn('token_id', 'text', (c) =>
          c.notNull().references('tokens.id').onDelete('cascade'),
        )
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('slack_threads')
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('thread_ts', 'text', (c) => c.notNull())
        .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
        .addColumn('reply_ts', 'text')
        .addColumn('slack_user_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('slack_threads_pk', ['channel', 'thread_ts'])
        .execute();
    },
  },
  {
    name: '0015_slack_turns',
    async up(db) {
      // Each turn Berth follows in a Slack thread until its final message is posted, so a
      // restarted server finishes the conversations the stopped one had open (slack-tables.ts).
      await db.schema
        .createTable('slack_turns')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('thread_ts', 'text', (c) => c.notNull())
        .addColumn('reply_ts', 'text')
        .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
        .addColumn('attempt_ids', 'text')
        .addColumn('slack_user_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('finished_at', 'text')
        .execute();
      await db.schema
        .createIndex('slack_turns_open')
        .on('slack_turns')
        .columns(['finished_at', 'created_at'])
        .execute();
    },
  },
  {
    name: '0016_github',
    async up(db) {
      // GitHub (src/integrations/github/): the webhook deliveries already taken, by their
      // X-GitHub-Delivery id (a redelivery starts nothing again; github-tables.ts).
      await db.schema
        .createTable('github_deliveries')
        .addColumn('delivery_id', 'text', (c) => c.primaryKey())
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('github_deliveries_received_at')
        .on('github_deliveries')
        .columns(['received_at'])
        .execute();
    },
  },
  {
    name: '0017_templates',
    async up(db) {
      // Templates (issue 16): shared environment fields that environments take with `extends`.
      // `spec` is the template as written (JSON text, validated), merged under an environment's.
      await db.schema
        .createTable('templates')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('extends', 'text')
        .addColumn('created_by_token_id', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull())
        .execute();
      // What an environment that extends a template wrote (its stored spec is the merge), so a
      // template change can merge it again; `extends` names the template it extends.
      await db.schema
        .createTable('environment_written_specs')
        .addColumn('environment_id', 'text', (c) =>
          c.primaryKey().references('environments.id').onDelete('cascade'),
        )
        .addColumn('extends', 'text', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('environment_written_specs_extends')
        .on('environment_written_specs')
        .column('extends')
        .execute();
    },
  },
  {
    name: '0018_usage',
    async up(db) {
      // What each finished attempt used (issue 17 item 5; usage-table.ts): tokens, the sandbox's
      // CPU time and peak memory, wall time; environment, token name and UTC day beside them.
      await db.schema
        .createTable('attempt_usage')
        .addColumn('attempt_id', 'text', (c) => c.primaryKey())
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('environment_id', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('day', 'text', (c) => c.notNull())
        .addColumn('finished_at', 'text', (c) => c.notNull())
        .addColumn('input_tokens', 'bigint', (c) => c.notNull())
        .addColumn('output_tokens', 'bigint', (c) => c.notNull())
        .addColumn('cpu_seconds', 'double precision')
        .addColumn('peak_memory_bytes', 'bigint')
        .addColumn('wall_ms', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('attempt_usage_finished_at')
        .on('attempt_usage')
        .columns(['finished_at'])
        .execute();
      await db.schema
        .createIndex('attempt_usage_environment_finished_at')
        .on('attempt_usage')
        .columns(['environment_id', 'finished_at'])
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
