import { sql, type Kysely, type Selectable } from 'kysely';
import type { CacheEntry } from '../../../domain/cache/cache-entry.js';
import type { CacheKeyParts } from '../../../domain/cache/cache-key.js';
import type {
  Attempt,
  AttemptError,
  AttemptFollowUp,
  AttemptResult,
} from '../../../domain/task/attempt.js';
import type { AttemptEvent } from '../../../domain/task/attempt-event.js';
import { isAttemptPhase, TERMINAL_PHASES } from '../../../domain/task/attempt-phase.js';
import type { Task, TaskAgentOptions, TaskStatus } from '../../../domain/task/task.js';
import { BerthError } from '../../../errors/berth-error.js';
import type {
  AttemptChange,
  AttemptCondition,
  AttemptEventWriter,
  ClaimOptions,
  LeasedAttempt,
  TaskListOptions,
} from '../../../ports/store.js';
import type { AttemptsTable, CacheEntriesTable, Database, TasksTable } from './database.js';

/**
 * The task lifecycle's queries (tasks, attempts with their leases, events, cache entries), with
 * Kysely's builder only so SQLite and PostgreSQL run the same. SqlStore delegates to this.
 * Times are ISO-8601 UTC strings, which order as text.
 */

function toTask(row: Selectable<TasksTable>): Task {
  return {
    id: row.id,
    environmentId: row.environment_id,
    prompt: row.prompt,
    command: row.command,
    ref: {
      ...(row.ref_branch !== null ? { branch: row.ref_branch } : {}),
      ...(row.ref_sha !== null ? { sha: row.ref_sha } : {}),
    },
    repository: row.repository,
    attemptCount: Number(row.attempt_count),
    pickedAttemptId: row.picked_attempt_id ?? null,
    agent: row.agent_options ? (JSON.parse(row.agent_options) as TaskAgentOptions) : null,
    createdBy: row.created_by ?? null,
    status: row.status as TaskStatus,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toAttempt(row: Selectable<AttemptsTable>): LeasedAttempt {
  if (!isAttemptPhase(row.phase))
    throw new BerthError('internal', `attempt ${row.id} has an unknown phase "${row.phase}"`);
  return {
    id: row.id,
    taskId: row.task_id,
    index: Number(row.idx),
    phase: row.phase,
    cacheHit: row.cache_hit === null ? null : Number(row.cache_hit) === 1,
    error: row.error === null ? null : (JSON.parse(row.error) as AttemptError),
    result: row.result === null ? null : (JSON.parse(row.result) as AttemptResult),
    followUp: row.follow_up ? (JSON.parse(row.follow_up) as AttemptFollowUp) : null,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
  };
}

function toCacheEntry(row: Selectable<CacheEntriesTable>): CacheEntry {
  return {
    id: row.id,
    environmentId: row.environment_id,
    key: row.key,
    parts: JSON.parse(row.parts) as CacheKeyParts,
    image: row.image,
    imageId: row.image_id,
    sizeBytes: Number(row.size_bytes),
    commit: row.commit_sha,
    exportNames: JSON.parse(row.export_names) as string[],
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

function attemptRow(attempt: Attempt): AttemptsTable {
  return {
    id: attempt.id,
    task_id: attempt.taskId,
    idx: attempt.index,
    phase: attempt.phase,
    cache_hit: attempt.cacheHit === null ? null : attempt.cacheHit ? 1 : 0,
    error: attempt.error === null ? null : JSON.stringify(attempt.error),
    result: attempt.result === null ? null : JSON.stringify(attempt.result),
    follow_up: attempt.followUp ? JSON.stringify(attempt.followUp) : null,
    created_at: attempt.createdAt,
    started_at: attempt.startedAt,
    finished_at: attempt.finishedAt,
    lease_owner: null,
    lease_expires_at: null,
    cancel_requested_at: null,
  };
}

const LIVE_NOT_QUEUED = (phase: string) =>
  phase !== 'queued' && !(TERMINAL_PHASES as readonly string[]).includes(phase);

export class TaskTables {
  constructor(private readonly db: Kysely<Database>) {}

  async createTask(task: Task, attempts: readonly Attempt[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('tasks')
        .values({
          id: task.id,
          environment_id: task.environmentId,
          prompt: task.prompt,
          command: task.command,
          ref_branch: task.ref.branch ?? null,
          ref_sha: task.ref.sha ?? null,
          repository: task.repository,
          attempt_count: task.attemptCount,
          agent_options: task.agent ? JSON.stringify(task.agent) : null,
          created_by: task.createdBy ?? null,
          status: task.status,
          created_at: task.createdAt,
          updated_at: task.updatedAt,
        })
        .execute();
      for (const attempt of attempts)
        await trx.insertInto('attempts').values(attemptRow(attempt)).execute();
    });
  }

  async getTask(id: string): Promise<Task | undefined> {
    const row = await this.db
      .selectFrom('tasks')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toTask(row) : undefined;
  }

  async listTasks(options: TaskListOptions = {}): Promise<Task[]> {
    let query = this.db.selectFrom('tasks').selectAll();
    if (options.environmentId !== undefined)
      query = query.where('environment_id', '=', options.environmentId);
    const rows = await query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(options.limit ?? 100)
      .execute();
    return rows.map(toTask);
  }

  async updateTaskStatus(id: string, status: TaskStatus, now: string): Promise<void> {
    await this.db
      .updateTable('tasks')
      .set({ status, updated_at: now })
      .where('id', '=', id)
      .execute();
  }

  async addFollowUpAttempt(attempt: Attempt, now: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('attempts').values(attemptRow(attempt)).execute();
      await trx
        .updateTable('tasks')
        .set({ picked_attempt_id: attempt.id, status: 'running', updated_at: now })
        .where('id', '=', attempt.taskId)
        .execute();
    });
  }

  async pickAttempt(taskId: string, attemptId: string, now: string): Promise<void> {
    await this.db
      .updateTable('tasks')
      .set({ picked_attempt_id: attemptId, updated_at: now })
      .where('id', '=', taskId)
      .execute();
  }

  async getAttempt(id: string): Promise<LeasedAttempt | undefined> {
    const row = await this.db
      .selectFrom('attempts')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toAttempt(row) : undefined;
  }

  async listAttempts(taskId: string): Promise<LeasedAttempt[]> {
    const rows = await this.db
      .selectFrom('attempts')
      .selectAll()
      .where('task_id', '=', taskId)
      .orderBy('idx')
      .execute();
    return rows.map(toAttempt);
  }

  async claimNextAttempt(options: ClaimOptions): Promise<LeasedAttempt | undefined> {
    const expires = new Date(Date.parse(options.now) + options.leaseMs).toISOString();
    return this.db.transaction().execute(async (trx) => {
      if (options.taskIds !== undefined && options.taskIds.length === 0) return undefined;
      for (let tries = 0; tries < 5; tries++) {
        let query = trx.selectFrom('attempts').select('id').where('phase', '=', 'queued');
        if (options.taskIds !== undefined)
          query = query.where('task_id', 'in', [...options.taskIds]);
        const next = await query
          .orderBy('created_at')
          .orderBy('idx')
          .orderBy('id')
          .limit(1)
          .executeTakeFirst();
        if (!next) return undefined;
        // Conditional on still being queued: a concurrent claimer (another orchestrator on the
        // same database) that took it first makes this update change nothing.
        const claimed = await trx
          .updateTable('attempts')
          .set({
            phase: 'creating',
            lease_owner: options.owner,
            lease_expires_at: expires,
            started_at: options.now,
          })
          .where('id', '=', next.id)
          .where('phase', '=', 'queued')
          .executeTakeFirst();
        if (Number(claimed.numUpdatedRows) === 1) {
          const row = await trx
            .selectFrom('attempts')
            .selectAll()
            .where('id', '=', next.id)
            .executeTakeFirstOrThrow();
          return toAttempt(row);
        }
      }
      return undefined;
    });
  }

  async renewAttemptLease(
    id: string,
    owner: string,
    now: string,
    leaseMs: number,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('attempts')
      .set({ lease_expires_at: new Date(Date.parse(now) + leaseMs).toISOString() })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async updateAttempt(
    id: string,
    change: AttemptChange,
    condition: AttemptCondition = {},
  ): Promise<boolean> {
    const set: Partial<AttemptsTable> = {};
    if (change.phase !== undefined) set.phase = change.phase;
    if (change.cacheHit !== undefined)
      set.cache_hit = change.cacheHit === null ? null : change.cacheHit ? 1 : 0;
    if (change.error !== undefined)
      set.error = change.error === null ? null : JSON.stringify(change.error);
    if (change.result !== undefined)
      set.result = change.result === null ? null : JSON.stringify(change.result);
    if (change.startedAt !== undefined) set.started_at = change.startedAt;
    if (change.finishedAt !== undefined) set.finished_at = change.finishedAt;
    // A finished attempt holds no lease.
    if (
      change.phase !== undefined &&
      (TERMINAL_PHASES as readonly string[]).includes(change.phase)
    ) {
      set.lease_owner = null;
      set.lease_expires_at = null;
    }
    if (Object.keys(set).length === 0) return true;
    let query = this.db.updateTable('attempts').set(set).where('id', '=', id);
    if (condition.leaseOwner !== undefined)
      query = query.where('lease_owner', '=', condition.leaseOwner);
    if (condition.phases !== undefined) {
      if (condition.phases.length === 0) return false;
      query = query.where('phase', 'in', [...condition.phases]);
    }
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async countLiveLeases(owner: string, now: string): Promise<number> {
    const row = await this.db
      .selectFrom('attempts')
      .select((eb) => eb.fn.countAll().as('count'))
      .where('lease_owner', '=', owner)
      .where('lease_expires_at', '>', now)
      .executeTakeFirst();
    return Number(row?.count ?? 0);
  }

  async listExpiredAttempts(now: string): Promise<LeasedAttempt[]> {
    const rows = await this.db
      .selectFrom('attempts')
      .selectAll()
      .where('lease_expires_at', 'is not', null)
      .where('lease_expires_at', '<', now)
      .orderBy('created_at')
      .execute();
    return rows.filter((row) => LIVE_NOT_QUEUED(row.phase)).map(toAttempt);
  }

  async takeOverExpiredAttempt(
    id: string,
    phase: string,
    owner: string,
    now: string,
    leaseMs: number,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('attempts')
      .set({
        lease_owner: owner,
        lease_expires_at: new Date(Date.parse(now) + leaseMs).toISOString(),
      })
      .where('id', '=', id)
      .where('phase', '=', phase)
      .where('lease_expires_at', '<', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async requeueAttempt(id: string, owner: string): Promise<boolean> {
    const result = await this.db
      .updateTable('attempts')
      .set({
        phase: 'queued',
        lease_owner: null,
        lease_expires_at: null,
        started_at: null,
        cancel_requested_at: null,
      })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async requestAttemptCancel(id: string, now: string): Promise<boolean> {
    const result = await this.db
      .updateTable('attempts')
      .set({ cancel_requested_at: now })
      .where('id', '=', id)
      .where('lease_owner', 'is not', null)
      .where('phase', 'not in', [...TERMINAL_PHASES, 'queued'])
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async listCancelRequests(owner: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('attempts')
      .select('id')
      .where('lease_owner', '=', owner)
      .where('cancel_requested_at', 'is not', null)
      .execute();
    return rows.map((row) => row.id);
  }

  async appendAttemptEvents(
    events: readonly AttemptEvent[],
    writer?: AttemptEventWriter,
  ): Promise<boolean> {
    const first = events[0];
    if (first === undefined) return true;
    return this.db.transaction().execute(async (trx) => {
      if (writer !== undefined) {
        // A no-op update of the attempt's row that matches only while the writer may write: it
        // locks the row (PostgreSQL) or the database (SQLite) until the transaction ends, so a
        // takeover's lease change waits for this write or this write sees it.
        const held = await trx
          .updateTable('attempts')
          .set({ lease_owner: sql<string | null>`lease_owner` })
          .where('id', '=', first.attemptId)
          .where((eb) =>
            eb.or([
              eb('lease_owner', '=', writer.leaseOwner),
              eb.and([eb('lease_owner', 'is', null), eb('phase', 'in', [...TERMINAL_PHASES])]),
            ]),
          )
          .executeTakeFirst();
        if (Number(held.numUpdatedRows) !== 1) return false;
        const last = await trx
          .selectFrom('attempt_events')
          .select((eb) => eb.fn.max('seq').as('seq'))
          .where('attempt_id', '=', first.attemptId)
          .executeTakeFirst();
        if (Number(last?.seq ?? 0) !== first.seq - 1) return false;
      }
      for (const event of events) {
        await trx
          .insertInto('attempt_events')
          .values({
            attempt_id: event.attemptId,
            seq: event.seq,
            type: event.type,
            body: JSON.stringify(event),
            at: event.at,
          })
          .execute();
      }
      return true;
    });
  }

  async listAttemptEvents(
    attemptId: string,
    afterSeq = 0,
    limit = 10_000,
  ): Promise<AttemptEvent[]> {
    const rows = await this.db
      .selectFrom('attempt_events')
      .select('body')
      .where('attempt_id', '=', attemptId)
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map((row) => JSON.parse(row.body) as AttemptEvent);
  }

  async findLiveCacheEntry(
    environmentId: string,
    key: string,
    now: string,
  ): Promise<CacheEntry | undefined> {
    const row = await this.db
      .selectFrom('cache_entries')
      .selectAll()
      .where('environment_id', '=', environmentId)
      .where('key', '=', key)
      .where('expires_at', '>', now)
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toCacheEntry(row) : undefined;
  }

  async latestCacheEntry(environmentId: string): Promise<CacheEntry | undefined> {
    const row = await this.db
      .selectFrom('cache_entries')
      .selectAll()
      .where('environment_id', '=', environmentId)
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toCacheEntry(row) : undefined;
  }

  async publishCacheEntry(entry: CacheEntry): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('cache_entries')
        .values({
          id: entry.id,
          environment_id: entry.environmentId,
          key: entry.key,
          parts: JSON.stringify(entry.parts),
          image: entry.image,
          image_id: entry.imageId,
          size_bytes: entry.sizeBytes,
          commit_sha: entry.commit,
          export_names: JSON.stringify(entry.exportNames),
          created_at: entry.createdAt,
          expires_at: entry.expiresAt,
        })
        .execute();
      // A build after a reset by hand: the next miss has another reason.
      await trx
        .updateTable('environments')
        .set({ cache_reset_at: null })
        .where('id', '=', entry.environmentId)
        .where('cache_reset_at', 'is not', null)
        .execute();
    });
  }

  async recordCacheReset(environmentId: string, at: string): Promise<void> {
    await this.db
      .updateTable('environments')
      .set({ cache_reset_at: at })
      .where('id', '=', environmentId)
      .execute();
  }

  async getCacheResetAt(environmentId: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('environments')
      .select('cache_reset_at')
      .where('id', '=', environmentId)
      .executeTakeFirst();
    return row?.cache_reset_at ?? undefined;
  }

  async listCacheEntries(environmentId?: string): Promise<CacheEntry[]> {
    let query = this.db.selectFrom('cache_entries').selectAll();
    if (environmentId !== undefined) query = query.where('environment_id', '=', environmentId);
    const rows = await query.orderBy('created_at', 'desc').execute();
    return rows.map(toCacheEntry);
  }

  async deleteCacheEntries(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .deleteFrom('cache_entries')
      .where('id', 'in', [...ids])
      .execute();
  }
}
