import { sql, type Kysely } from 'kysely';
import type {
  AttemptUsage,
  UsageGroup,
  UsageGrouping,
} from '../../../domain/usage/attempt-usage.js';
import type { Database } from './database.js';

/**
 * Attempts' usage (migration 0018_usage, issue 17): one row per finished attempt, with the
 * environment, the submitting token's name and the UTC day kept beside the figures so a report
 * groups by a plain column on SQLite and PostgreSQL alike. No foreign key: the figures stay when
 * an environment or a task is deleted (what was used was used).
 */
export interface AttemptUsageTable {
  attempt_id: string;
  task_id: string;
  environment_id: string;
  created_by: string | null;
  /** `YYYY-MM-DD` of finished_at (UTC). */
  day: string;
  finished_at: string;
  input_tokens: number;
  output_tokens: number;
  cpu_seconds: number | null;
  peak_memory_bytes: number | null;
  wall_ms: number;
}

const GROUP_COLUMN = {
  environment: 'environment_id',
  token: 'created_by',
  day: 'day',
} as const satisfies Record<UsageGrouping, keyof AttemptUsageTable>;

export class UsageTable {
  constructor(private readonly db: Kysely<Database>) {}

  /** Stores an attempt's usage; a second record of the same attempt replaces the first. */
  async record(usage: AttemptUsage): Promise<void> {
    const row: AttemptUsageTable = {
      attempt_id: usage.attemptId,
      task_id: usage.taskId,
      environment_id: usage.environmentId,
      created_by: usage.createdBy,
      day: usage.finishedAt.slice(0, 10),
      finished_at: usage.finishedAt,
      input_tokens: usage.inputTokens,
      output_tokens: usage.outputTokens,
      cpu_seconds: usage.cpuSeconds,
      peak_memory_bytes: usage.peakMemoryBytes,
      wall_ms: usage.wallMs,
    };
    const update: Partial<AttemptUsageTable> = { ...row };
    delete update.attempt_id;
    await this.db
      .insertInto('attempt_usage')
      .values(row)
      .onConflict((oc) => oc.column('attempt_id').doUpdateSet(update))
      .execute();
  }

  async get(attemptId: string): Promise<AttemptUsage | undefined> {
    const row = await this.db
      .selectFrom('attempt_usage')
      .selectAll()
      .where('attempt_id', '=', attemptId)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    return {
      attemptId: row.attempt_id,
      taskId: row.task_id,
      environmentId: row.environment_id,
      createdBy: row.created_by,
      finishedAt: row.finished_at,
      inputTokens: Number(row.input_tokens),
      outputTokens: Number(row.output_tokens),
      cpuSeconds: row.cpu_seconds === null ? null : Number(row.cpu_seconds),
      peakMemoryBytes: row.peak_memory_bytes === null ? null : Number(row.peak_memory_bytes),
      wallMs: Number(row.wall_ms),
    };
  }

  /**
   * The sums of the attempts that finished in [from, to), grouped; only the given environments'
   * when `environmentIds` is set (a token that is no admin sees its own environments' usage).
   */
  async summarize(options: {
    from: string;
    to: string;
    by: UsageGrouping;
    environmentIds?: readonly string[];
  }): Promise<UsageGroup[]> {
    if (options.environmentIds !== undefined && options.environmentIds.length === 0) return [];
    const column = GROUP_COLUMN[options.by];
    let query = this.db
      .selectFrom('attempt_usage')
      .select([
        sql<string | null>`${sql.ref(column)}`.as('key'),
        sql<number | string>`count(*)`.as('attempts'),
        sql<number | string | null>`sum(input_tokens)`.as('input_tokens'),
        sql<number | string | null>`sum(output_tokens)`.as('output_tokens'),
        sql<number | string | null>`sum(cpu_seconds)`.as('cpu_seconds'),
        sql<number | string | null>`max(peak_memory_bytes)`.as('peak_memory_bytes'),
        sql<number | string | null>`sum(wall_ms)`.as('wall_ms'),
      ])
      .where('finished_at', '>=', options.from)
      .where('finished_at', '<', options.to);
    if (options.environmentIds !== undefined)
      query = query.where('environment_id', 'in', [...options.environmentIds]);
    const rows = await query.groupBy(column).orderBy(column).execute();
    return rows.map((row) => ({
      key: row.key ?? '(unknown)',
      attempts: Number(row.attempts),
      inputTokens: Number(row.input_tokens ?? 0),
      outputTokens: Number(row.output_tokens ?? 0),
      cpuSeconds: Math.round(Number(row.cpu_seconds ?? 0) * 1000) / 1000,
      peakMemoryBytes: Number(row.peak_memory_bytes ?? 0),
      wallSeconds: Math.round(Number(row.wall_ms ?? 0)) / 1000,
    }));
  }

  /** The model tokens (in and out) of the environment's attempts that finished since `since`. */
  async tokensSince(environmentId: string, since: string): Promise<number> {
    const row = await this.db
      .selectFrom('attempt_usage')
      .select(sql<number | string | null>`sum(input_tokens + output_tokens)`.as('tokens'))
      .where('environment_id', '=', environmentId)
      .where('finished_at', '>=', since)
      .executeTakeFirst();
    return Number(row?.tokens ?? 0);
  }

  /** How many attempts of the environment's tasks were created since `since` (any phase). */
  async attemptsCreatedSince(environmentId: string, since: string): Promise<number> {
    const row = await this.db
      .selectFrom('attempts')
      .innerJoin('tasks', 'tasks.id', 'attempts.task_id')
      .select(sql<number | string>`count(*)`.as('count'))
      .where('tasks.environment_id', '=', environmentId)
      .where('attempts.created_at', '>=', since)
      .executeTakeFirst();
    return Number(row?.count ?? 0);
  }
}
