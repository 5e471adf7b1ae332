import { UsageTable } from './usage-table.js';
import type {
  AttemptUsage,
  UsageGroup,
  UsageGrouping,
} from '../../../domain/usage/attempt-usage.js';
import { Migrator, type Kysely, type Selectable, type Transaction } from 'kysely';
import { BerthError } from '../../../errors/berth-error.js';
import type { DefaultBranchOrigin } from '../../../domain/environment/environment.js';
import type { EnvironmentSpec } from '../../../domain/environment/environment-spec.js';
import type { CacheEntry } from '../../../domain/cache/cache-entry.js';
import type { Attempt } from '../../../domain/task/attempt.js';
import type { AttemptEvent } from '../../../domain/task/attempt-event.js';
import type { AttemptPhase } from '../../../domain/task/attempt-phase.js';
import type { Task, TaskStatus } from '../../../domain/task/task.js';
import type {
  AttemptChange,
  AttemptCondition,
  AttemptEventWriter,
  ClaimOptions,
  LeasedAttempt,
  TaskListOptions,
  EnvironmentChange,
  NewEnvironment,
  NewTemplate,
  NewToken,
  SealedSecret,
  Store,
  StoredEgressCa,
  SlackThread,
  SlackTurn,
  StoredEnvironment,
  StoredWebSession,
  TemplateChange,
  Token,
  WrittenSpec,
} from '../../../ports/store.js';
import type { Database, EnvironmentsTable, TokensTable } from './database.js';
import { TaskTables } from './task-tables.js';
import { ConversationTable } from './conversation-table.js';
import { SlackTables } from './slack-tables.js';
import type { ChatMessage } from '../../../ports/model-client.js';
import { CacheBuildTable } from './cache-build-table.js';
import { deleteWrittenSpecIn, TemplateTables } from './template-tables.js';
import type { Template } from '../../../domain/environment/environment-template.js';
import { WebSessionTable } from './web-session-table.js';
import { GitHubTables } from './github-tables.js';
import type {
  CacheBuildClaim,
  CacheBuildRequest,
} from '../../../domain/cache/cache-build-claim.js';
import { OrderedMigrationProvider, STORE_MIGRATIONS, type NamedMigration } from './migrations.js';

/**
 * The dialect-neutral half of the SQL stores: every query Berth makes, written with Kysely's
 * builder only. `SqliteStore` (and a future `PostgresStore`) make the Kysely instance and say how
 * their driver reports a unique-constraint violation; everything else lives here.
 */

export interface SqlStoreOptions {
  /** True when `error` is the driver's unique-constraint violation. */
  isUniqueViolation(error: unknown): boolean;
  migrations?: readonly NamedMigration[];
}

type EnvironmentRow = Selectable<EnvironmentsTable>;
type TokenRow = Selectable<TokensTable>;

function toToken(row: TokenRow): Token {
  return {
    id: row.id,
    name: row.name,
    admin: Number(row.admin) === 1,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

/** A member row joined with its live token. */
interface MemberRow {
  environment_id: string;
  token_id: string;
  name: string;
}

/**
 * The stored environment. `members` is what the member rows say (live tokens only), in the order
 * the names are written in `spec.members`, then any other live member by name; `spec.members`
 * stays as written.
 */
function toEnvironment(
  row: EnvironmentRow,
  secretNames: string[],
  memberRows: readonly MemberRow[],
): StoredEnvironment {
  const spec = JSON.parse(row.spec) as EnvironmentSpec;
  const idByName = new Map(memberRows.map((member) => [member.name, member.token_id]));
  const written = spec.members.filter((name) => idByName.has(name));
  const others = [...idByName.keys()].filter((name) => !written.includes(name)).sort();
  const members = [...new Set([...written, ...others])].map((name) => ({
    tokenId: idByName.get(name) ?? '',
    name,
  }));
  return {
    id: row.id,
    spec,
    secretNames,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    revision: Number(row.revision),
    createdByTokenId: row.created_by_token_id,
    members,
    defaultBranchOrigin: defaultBranchOrigin(row.default_branch_origin),
  };
}

/** The stored origin; anything else (never written) counts as `named`, never replaced. */
function defaultBranchOrigin(value: string): DefaultBranchOrigin {
  return value === 'found' || value === 'assumed' ? value : 'named';
}

function environmentExists(name: string): BerthError {
  return new BerthError('conflict', `an environment named "${name}" already exists`, { name });
}

export class SqlStore implements Store {
  constructor(
    protected readonly db: Kysely<Database>,
    private readonly options: SqlStoreOptions,
  ) {}

  async migrate(): Promise<void> {
    const migrator = new Migrator({
      db: this.db,
      provider: new OrderedMigrationProvider(this.options.migrations ?? STORE_MIGRATIONS),
    });
    const { error, results } = await migrator.migrateToLatest();
    if (error !== undefined) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName;
      throw new BerthError(
        'internal',
        `the store's schema could not be brought up to date${failed ? ` (migration ${failed})` : ''}: ${
          error instanceof Error ? error.message : JSON.stringify(error)
        }`,
        {},
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  // ---- environments ---------------------------------------------------------------------------

  async createEnvironment(environment: NewEnvironment): Promise<StoredEnvironment> {
    const name = environment.spec.name;
    try {
      await this.db.transaction().execute(async (trx) => {
        const existing = await trx
          .selectFrom('environments')
          .select('id')
          .where('name', '=', name)
          .executeTakeFirst();
        if (existing) throw environmentExists(name);
        await trx
          .insertInto('environments')
          .values({
            id: environment.id,
            name,
            spec: JSON.stringify(environment.spec),
            created_by_token_id: environment.createdByTokenId,
            created_at: environment.now,
            updated_at: environment.now,
            revision: 1,
            default_branch_origin: environment.defaultBranchOrigin ?? 'named',
          })
          .execute();
        await this.replaceMembers(trx, environment.id, environment.memberTokenIds ?? []);
        await this.upsertSecrets(trx, environment.id, environment.secrets, environment.now);
      });
    } catch (error) {
      if (!(error instanceof BerthError) && this.options.isUniqueViolation(error))
        throw environmentExists(name);
      throw error;
    }
    const created = await this.getEnvironmentById(environment.id);
    if (!created)
      throw new BerthError(
        'internal',
        `environment ${environment.id} vanished right after it was stored`,
      );
    return created;
  }

  async getEnvironmentById(id: string): Promise<StoredEnvironment | undefined> {
    const row = await this.db
      .selectFrom('environments')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row
      ? toEnvironment(row, await this.listSecretNames(row.id), await this.members(row.id))
      : undefined;
  }

  async getEnvironmentByName(name: string): Promise<StoredEnvironment | undefined> {
    const row = await this.db
      .selectFrom('environments')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row
      ? toEnvironment(row, await this.listSecretNames(row.id), await this.members(row.id))
      : undefined;
  }

  /** The live member tokens of one environment, or of all when none is given. */
  private async members(environmentId?: string): Promise<MemberRow[]> {
    let query = this.db
      .selectFrom('environment_members')
      .innerJoin('tokens', 'tokens.id', 'environment_members.token_id')
      .select([
        'environment_members.environment_id as environment_id',
        'environment_members.token_id as token_id',
        'tokens.name as name',
      ])
      .where('tokens.revoked_at', 'is', null);
    if (environmentId !== undefined)
      query = query.where('environment_members.environment_id', '=', environmentId);
    return query.orderBy('environment_members.token_id').execute();
  }

  private async replaceMembers(
    trx: Transaction<Database>,
    environmentId: string,
    tokenIds: readonly string[],
  ): Promise<void> {
    await trx
      .deleteFrom('environment_members')
      .where('environment_id', '=', environmentId)
      .execute();
    for (const tokenId of new Set(tokenIds)) {
      await trx
        .insertInto('environment_members')
        .values({ environment_id: environmentId, token_id: tokenId })
        .execute();
    }
  }

  async listEnvironments(): Promise<StoredEnvironment[]> {
    const rows = await this.db.selectFrom('environments').selectAll().orderBy('name').execute();
    const secrets = await this.db
      .selectFrom('environment_secrets')
      .select(['environment_id', 'name'])
      .orderBy('environment_id')
      .orderBy('name')
      .execute();
    const byEnvironment = new Map<string, string[]>();
    for (const secret of secrets) {
      const names = byEnvironment.get(secret.environment_id) ?? [];
      names.push(secret.name);
      byEnvironment.set(secret.environment_id, names);
    }
    const membersOf = new Map<string, MemberRow[]>();
    for (const member of await this.members()) {
      const list = membersOf.get(member.environment_id) ?? [];
      list.push(member);
      membersOf.set(member.environment_id, list);
    }
    return rows.map((row) =>
      toEnvironment(row, byEnvironment.get(row.id) ?? [], membersOf.get(row.id) ?? []),
    );
  }

  async updateEnvironment(id: string, change: EnvironmentChange): Promise<StoredEnvironment> {
    await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('environments')
        .select(['name', 'revision'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (!row) throw new BerthError('not_found', `environment ${id} not found`, { id });
      if (row.name !== change.spec.name) {
        throw new BerthError(
          'invalid_input',
          `an environment cannot be renamed (from "${row.name}" to "${change.spec.name}")`,
        );
      }
      if (
        change.expectedRevision !== undefined &&
        Number(row.revision) !== change.expectedRevision
      ) {
        throw new BerthError(
          'conflict',
          `environment "${row.name}" changed meanwhile (revision ${row.revision}, expected ${change.expectedRevision})`,
          { revision: Number(row.revision) },
        );
      }
      await trx
        .updateTable('environments')
        .set({
          spec: JSON.stringify(change.spec),
          updated_at: change.now,
          revision: Number(row.revision) + 1,
          ...(change.defaultBranchOrigin !== undefined
            ? { default_branch_origin: change.defaultBranchOrigin }
            : {}),
        })
        .where('id', '=', id)
        .execute();
      if (change.memberTokenIds !== undefined)
        await this.replaceMembers(trx, id, change.memberTokenIds);
      if (change.removeSecrets.length > 0) {
        await trx
          .deleteFrom('environment_secrets')
          .where('environment_id', '=', id)
          .where('name', 'in', change.removeSecrets)
          .execute();
      }
      await this.upsertSecrets(trx, id, change.setSecrets, change.now);
    });
    const updated = await this.getEnvironmentById(id);
    if (!updated) throw new BerthError('not_found', `environment ${id} not found`, { id });
    return updated;
  }

  async deleteEnvironment(id: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // Explicit, so no adapter depends on the driver enforcing ON DELETE CASCADE.
      await trx.deleteFrom('environment_secrets').where('environment_id', '=', id).execute();
      await trx.deleteFrom('environment_members').where('environment_id', '=', id).execute();
      await trx.deleteFrom('egress_cas').where('environment_id', '=', id).execute();
      await deleteWrittenSpecIn(trx, id);
      const result = await trx.deleteFrom('environments').where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  // ---- templates (template-tables.ts) --------------------------------------------------------

  private get templates(): TemplateTables {
    return new TemplateTables(this.db, (error) => this.options.isUniqueViolation(error));
  }

  createTemplate(template: NewTemplate): Promise<Template> {
    return this.templates.create(template);
  }

  getTemplateByName(name: string): Promise<Template | undefined> {
    return this.templates.get(name);
  }

  listTemplates(): Promise<Template[]> {
    return this.templates.list();
  }

  updateTemplate(name: string, change: TemplateChange): Promise<Template> {
    return this.templates.update(name, change);
  }

  deleteTemplate(name: string): Promise<boolean> {
    return this.templates.delete(name);
  }

  listTemplatesExtending(name: string): Promise<string[]> {
    return this.templates.extending(name);
  }

  putWrittenSpec(environmentId: string, written: WrittenSpec | undefined): Promise<void> {
    return this.templates.putWrittenSpec(environmentId, written);
  }

  getWrittenSpec(environmentId: string): Promise<WrittenSpec | undefined> {
    return this.templates.getWrittenSpec(environmentId);
  }

  listEnvironmentsExtending(names: readonly string[]): Promise<string[]> {
    return this.templates.environmentsExtending(names);
  }

  private async upsertSecrets(
    trx: Transaction<Database>,
    environmentId: string,
    secrets: SealedSecret[],
    now: string,
  ): Promise<void> {
    for (const secret of secrets) {
      await trx
        .insertInto('environment_secrets')
        .values({
          environment_id: environmentId,
          name: secret.name,
          ciphertext: secret.ciphertext,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) =>
          oc
            .columns(['environment_id', 'name'])
            .doUpdateSet({ ciphertext: secret.ciphertext, updated_at: now }),
        )
        .execute();
    }
  }

  // ---- secrets --------------------------------------------------------------------------------

  async listSecretNames(environmentId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('environment_secrets')
      .select('name')
      .where('environment_id', '=', environmentId)
      .orderBy('name')
      .execute();
    return rows.map((r) => r.name);
  }

  async getSecretCiphertexts(environmentId: string): Promise<SealedSecret[]> {
    return this.db
      .selectFrom('environment_secrets')
      .select(['name', 'ciphertext'])
      .where('environment_id', '=', environmentId)
      .orderBy('name')
      .execute();
  }

  // ---- tokens ---------------------------------------------------------------------------------

  async createToken(token: NewToken): Promise<Token> {
    try {
      await this.db
        .insertInto('tokens')
        .values({
          id: token.id,
          name: token.name,
          hash: token.hash,
          admin: token.admin ? 1 : 0,
          created_at: token.now,
          last_used_at: null,
          revoked_at: null,
        })
        .execute();
    } catch (error) {
      if (this.options.isUniqueViolation(error)) {
        throw new BerthError('conflict', `a token named "${token.name}" already exists`, {
          name: token.name,
        });
      }
      throw error;
    }
    return {
      id: token.id,
      name: token.name,
      admin: token.admin,
      createdAt: token.now,
      lastUsedAt: null,
      revokedAt: null,
    };
  }

  async getTokenById(id: string): Promise<Token | undefined> {
    const row = await this.db
      .selectFrom('tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toToken(row) : undefined;
  }

  async getActiveTokenByName(name: string): Promise<Token | undefined> {
    const row = await this.db
      .selectFrom('tokens')
      .selectAll()
      .where('name', '=', name)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return row ? toToken(row) : undefined;
  }

  async getTokenByHash(hash: string): Promise<Token | undefined> {
    const row = await this.db
      .selectFrom('tokens')
      .selectAll()
      .where('hash', '=', hash)
      .executeTakeFirst();
    return row ? toToken(row) : undefined;
  }

  async listTokens(): Promise<Token[]> {
    const rows = await this.db
      .selectFrom('tokens')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toToken);
  }

  async touchToken(id: string, now: string): Promise<void> {
    await this.db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  async revokeToken(id: string, now: string): Promise<Token | undefined> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('tokens')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .execute();
      // A revoked token is a member of nothing (reads skip revoked tokens too).
      await trx.deleteFrom('environment_members').where('token_id', '=', id).execute();
      // Its web UI sessions end with it.
      await trx.deleteFrom('web_sessions').where('token_id', '=', id).execute();
    });
    return this.getTokenById(id);
  }

  async countActiveAdminTokens(): Promise<number> {
    const row = await this.db
      .selectFrom('tokens')
      .select((eb) => eb.fn.countAll().as('count'))
      .where('admin', '=', 1)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(row?.count ?? 0);
  }

  // ---- tasks, attempts, events, cache entries (queries in task-tables.ts) ----------------------

  private get tasks(): TaskTables {
    return new TaskTables(this.db);
  }

  createTask(task: Task, attempts: readonly Attempt[]): Promise<void> {
    return this.tasks.createTask(task, attempts);
  }

  getTask(id: string): Promise<Task | undefined> {
    return this.tasks.getTask(id);
  }

  listTasks(options?: TaskListOptions): Promise<Task[]> {
    return this.tasks.listTasks(options);
  }

  updateTaskStatus(id: string, status: TaskStatus, now: string): Promise<void> {
    return this.tasks.updateTaskStatus(id, status, now);
  }

  addFollowUpAttempt(attempt: Attempt, now: string): Promise<void> {
    return this.tasks.addFollowUpAttempt(attempt, now);
  }

  pickAttempt(taskId: string, attemptId: string, now: string): Promise<void> {
    return this.tasks.pickAttempt(taskId, attemptId, now);
  }

  getAttempt(id: string): Promise<LeasedAttempt | undefined> {
    return this.tasks.getAttempt(id);
  }

  listAttempts(taskId: string): Promise<LeasedAttempt[]> {
    return this.tasks.listAttempts(taskId);
  }

  claimNextAttempt(options: ClaimOptions): Promise<LeasedAttempt | undefined> {
    return this.tasks.claimNextAttempt(options);
  }

  renewAttemptLease(id: string, owner: string, now: string, leaseMs: number): Promise<boolean> {
    return this.tasks.renewAttemptLease(id, owner, now, leaseMs);
  }

  updateAttempt(id: string, change: AttemptChange, condition?: AttemptCondition): Promise<boolean> {
    return this.tasks.updateAttempt(id, change, condition);
  }

  countLiveLeases(owner: string, now: string): Promise<number> {
    return this.tasks.countLiveLeases(owner, now);
  }

  listExpiredAttempts(now: string): Promise<LeasedAttempt[]> {
    return this.tasks.listExpiredAttempts(now);
  }

  takeOverExpiredAttempt(
    id: string,
    phase: AttemptPhase,
    owner: string,
    now: string,
    leaseMs: number,
  ): Promise<boolean> {
    return this.tasks.takeOverExpiredAttempt(id, phase, owner, now, leaseMs);
  }

  requeueAttempt(id: string, owner: string): Promise<boolean> {
    return this.tasks.requeueAttempt(id, owner);
  }

  requestAttemptCancel(id: string, now: string): Promise<boolean> {
    return this.tasks.requestAttemptCancel(id, now);
  }

  listCancelRequests(owner: string): Promise<string[]> {
    return this.tasks.listCancelRequests(owner);
  }

  appendAttemptEvents(
    events: readonly AttemptEvent[],
    writer?: AttemptEventWriter,
  ): Promise<boolean> {
    return this.tasks.appendAttemptEvents(events, writer);
  }

  listAttemptEvents(attemptId: string, afterSeq?: number, limit?: number): Promise<AttemptEvent[]> {
    return this.tasks.listAttemptEvents(attemptId, afterSeq, limit);
  }

  findLiveCacheEntry(
    environmentId: string,
    key: string,
    now: string,
  ): Promise<CacheEntry | undefined> {
    return this.tasks.findLiveCacheEntry(environmentId, key, now);
  }

  latestCacheEntry(environmentId: string): Promise<CacheEntry | undefined> {
    return this.tasks.latestCacheEntry(environmentId);
  }

  publishCacheEntry(entry: CacheEntry): Promise<void> {
    return this.tasks.publishCacheEntry(entry);
  }

  listCacheEntries(environmentId?: string): Promise<CacheEntry[]> {
    return this.tasks.listCacheEntries(environmentId);
  }

  deleteCacheEntries(ids: readonly string[]): Promise<void> {
    return this.tasks.deleteCacheEntries(ids);
  }
  recordCacheReset(environmentId: string, at: string): Promise<void> {
    return this.tasks.recordCacheReset(environmentId, at);
  }

  getCacheResetAt(environmentId: string): Promise<string | undefined> {
    return this.tasks.getCacheResetAt(environmentId);
  }

  recordAttemptUsage(usage: AttemptUsage): Promise<void> {
    return new UsageTable(this.db).record(usage);
  }

  getAttemptUsage(attemptId: string): Promise<AttemptUsage | undefined> {
    return new UsageTable(this.db).get(attemptId);
  }

  summarizeUsage(options: {
    from: string;
    to: string;
    by: UsageGrouping;
    environmentIds?: readonly string[];
  }): Promise<UsageGroup[]> {
    return new UsageTable(this.db).summarize(options);
  }

  tokensUsedSince(environmentId: string, since: string): Promise<number> {
    return new UsageTable(this.db).tokensSince(environmentId, since);
  }

  attemptsCreatedSince(environmentId: string, since: string): Promise<number> {
    return new UsageTable(this.db).attemptsCreatedSince(environmentId, since);
  }

  putConversation(attemptId: string, messages: readonly ChatMessage[], now: string): Promise<void> {
    return new ConversationTable(this.db).put(attemptId, messages, now);
  }

  getConversation(attemptId: string): Promise<ChatMessage[] | undefined> {
    return new ConversationTable(this.db).get(attemptId);
  }

  claimCacheBuild(request: CacheBuildRequest): Promise<boolean> {
    return new CacheBuildTable(this.db).claim(request);
  }

  renewCacheBuild(request: CacheBuildRequest): Promise<boolean> {
    return new CacheBuildTable(this.db).renew(request);
  }

  releaseCacheBuild(environmentId: string, key: string, owner: string): Promise<void> {
    return new CacheBuildTable(this.db).release(environmentId, key, owner);
  }

  getCacheBuild(environmentId: string, key: string): Promise<CacheBuildClaim | undefined> {
    return new CacheBuildTable(this.db).get(environmentId, key);
  }

  deleteExpiredCacheBuilds(now: string): Promise<number> {
    return new CacheBuildTable(this.db).deleteExpired(now);
  }

  // ---- egress CAs -----------------------------------------------------------------------------

  async getEgressCa(environmentId: string): Promise<StoredEgressCa | undefined> {
    const row = await this.db
      .selectFrom('egress_cas')
      .selectAll()
      .where('environment_id', '=', environmentId)
      .executeTakeFirst();
    return row === undefined
      ? undefined
      : {
          environmentId: row.environment_id,
          certificatePem: row.certificate_pem,
          sealedPrivateKey: row.sealed_private_key,
          createdAt: row.created_at,
        };
  }

  // ---- GitHub (queries in github-tables.ts) ----

  claimGitHubDelivery(deliveryId: string, event: string, now: string): Promise<boolean> {
    return new GitHubTables(this.db).claimDelivery(deliveryId, event, now);
  }

  pruneGitHubDeliveries(before: string): Promise<number> {
    return new GitHubTables(this.db).pruneDeliveries(before);
  }

  async putEgressCaIfAbsent(ca: StoredEgressCa): Promise<StoredEgressCa> {
    await this.db
      .insertInto('egress_cas')
      .values({
        environment_id: ca.environmentId,
        certificate_pem: ca.certificatePem,
        sealed_private_key: ca.sealedPrivateKey,
        created_at: ca.createdAt,
      })
      .onConflict((oc) => oc.column('environment_id').doNothing())
      .execute();
    const stored = await this.getEgressCa(ca.environmentId);
    if (stored === undefined)
      throw new BerthError('internal', `the egress CA of ${ca.environmentId} vanished when stored`);
    return stored;
  }
  // ---- web UI sessions (queries in web-session-table.ts) ----

  createWebSession(session: StoredWebSession, keepPerToken: number): Promise<void> {
    return new WebSessionTable(this.db).create(session, keepPerToken);
  }

  getWebSession(idHash: string): Promise<StoredWebSession | undefined> {
    return new WebSessionTable(this.db).get(idHash);
  }

  touchWebSession(idHash: string, usedAt: string): Promise<void> {
    return new WebSessionTable(this.db).touch(idHash, usedAt);
  }

  deleteWebSession(idHash: string): Promise<void> {
    return new WebSessionTable(this.db).delete(idHash);
  }

  deleteExpiredWebSessions(now: string, usedBefore: string): Promise<number> {
    return new WebSessionTable(this.db).deleteExpired(now, usedBefore);
  }

  // ---- Slack (queries in slack-tables.ts) ----

  claimSlackEvent(eventId: string, now: string): Promise<boolean> {
    return new SlackTables(this.db).claimEvent(eventId, now);
  }

  pruneSlackEvents(before: string): Promise<number> {
    return new SlackTables(this.db).pruneEvents(before);
  }

  linkSlackUser(slackUserId: string, tokenId: string, now: string): Promise<void> {
    return new SlackTables(this.db).linkUser(slackUserId, tokenId, now);
  }

  async getSlackUserToken(slackUserId: string): Promise<Token | undefined> {
    const tokenId = await new SlackTables(this.db).userTokenId(slackUserId);
    const token = tokenId !== undefined ? await this.getTokenById(tokenId) : undefined;
    return token && token.revokedAt === null ? token : undefined;
  }

  putSlackThread(thread: SlackThread): Promise<void> {
    return new SlackTables(this.db).putThread(thread);
  }

  getSlackThread(channel: string, threadTs: string): Promise<SlackThread | undefined> {
    return new SlackTables(this.db).getThread(channel, threadTs);
  }

  putSlackTurn(turn: SlackTurn): Promise<void> {
    return new SlackTables(this.db).putTurn(turn);
  }

  finishSlackTurn(id: string, now: string): Promise<void> {
    return new SlackTables(this.db).finishTurn(id, now);
  }

  listOpenSlackTurns(): Promise<SlackTurn[]> {
    return new SlackTables(this.db).openTurns();
  }
}
