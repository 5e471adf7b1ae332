import type { AttemptUsage, UsageGroup, UsageGrouping } from '../domain/usage/attempt-usage.js';
import type { CacheEntry } from '../domain/cache/cache-entry.js';
import type { CacheBuildClaim, CacheBuildRequest } from '../domain/cache/cache-build-claim.js';
import type { Attempt, AttemptError, AttemptResult } from '../domain/task/attempt.js';
import type { AttemptEvent } from '../domain/task/attempt-event.js';
import type { AttemptPhase } from '../domain/task/attempt-phase.js';
import type { Task, TaskStatus } from '../domain/task/task.js';
import type { DefaultBranchOrigin, Environment } from '../domain/environment/environment.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import type { Template, TemplateSpec } from '../domain/environment/environment-template.js';
import type { ChatMessage } from './model-client.js';

/**
 * The store port: everything Berth keeps between restarts. Adapters: `SqliteStore` (embedded,
 * one machine) and, later, `PostgresStore` (several orchestrators). Every method is async and
 * nothing here is specific to one database.
 *
 * Rules every adapter keeps (the conformance suite in test/store checks them):
 * - a write that touches several rows (an environment and its secrets) is one transaction:
 *   it is stored completely or not at all;
 * - a duplicate unique name is a `BerthError('conflict')`, never a driver error;
 * - secrets are stored only as the ciphertext the caller gives (the store never sees a value);
 * - times are ISO-8601 strings in UTC, given by the caller (so tests can fix the clock).
 */

/** One secret as stored: the name and its sealed value (see SecretBox). */
export interface SealedSecret {
  name: string;
  ciphertext: string;
}

/** A member of an environment: a live token, by id, with its name. */
export interface StoredMember {
  tokenId: string;
  name: string;
}

/**
 * An environment as the store keeps it: the domain object plus who created it and who its members
 * are. Membership is by token id: `members` are the live tokens bound when the environment was
 * written (in the order of `spec.members`), never a token that merely has a name the spec lists;
 * `spec.members` keeps the names as written.
 */
export interface StoredEnvironment extends Environment {
  /** The id of the token that created it (membership: a creator always sees its environment). */
  createdByTokenId: string | null;
  /** The live member tokens (a revoked one drops out). */
  members: StoredMember[];
}

export interface NewEnvironment {
  id: string;
  spec: EnvironmentSpec;
  createdByTokenId: string | null;
  /**
   * Ids of the member tokens, resolved by the caller from `spec.members` when the environment is
   * written (none when absent, as for `berth run`, which has no tokens).
   */
  memberTokenIds?: readonly string[];
  secrets: SealedSecret[];
  now: string;
  /** Where the default branch came from (default `named`: never replaced by an attempt). */
  defaultBranchOrigin?: DefaultBranchOrigin;
}

export interface EnvironmentChange {
  spec: EnvironmentSpec;
  /** Secrets to add or replace. */
  setSecrets: SealedSecret[];
  /** Secrets to remove (names not stored are ignored). */
  removeSecrets: string[];
  now: string;
  /** When given, the update fails with `conflict` if the stored revision differs. */
  expectedRevision?: number;
  /** When given, the member tokens' ids replace the stored ones (else they stay). */
  memberTokenIds?: readonly string[];
  /** When given, replaces where the default branch came from (else it stays). */
  defaultBranchOrigin?: DefaultBranchOrigin;
}

export interface Token {
  id: string;
  name: string;
  admin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface NewToken {
  id: string;
  name: string;
  /** Hex SHA-256 of the token's value; the value itself is never stored. */
  hash: string;
  admin: boolean;
  now: string;
}

// ---- tasks, attempts, their events, cache entries (the task lifecycle) ------------------------

/** What may change on an attempt as it runs. */
export interface AttemptChange {
  phase?: AttemptPhase;
  cacheHit?: boolean | null;
  error?: AttemptError | null;
  result?: AttemptResult | null;
  startedAt?: string | null;
  finishedAt?: string | null;
}

/** Conditions an attempt update needs (else it changes nothing and returns false). */
export interface AttemptCondition {
  /** The lease must be held by this owner. */
  leaseOwner?: string;
  /** The attempt must be in one of these phases. */
  phases?: readonly AttemptPhase[];
}

/** Who appends to an attempt's log (see `appendAttemptEvents`). */
export interface AttemptEventWriter {
  leaseOwner: string;
}

/** An attempt as the queue sees it: with its lease. */
export interface LeasedAttempt extends Attempt {
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
}

export interface ClaimOptions {
  /** Who claims (an orchestrator's id); written as the lease owner. */
  owner: string;
  now: string;
  leaseMs: number;
  /** Only attempts of these tasks (a `berth run` sharing a data directory claims its own only). */
  taskIds?: readonly string[];
}

export interface TaskListOptions {
  environmentId?: string;
  limit?: number;
}

/**
 * An environment's egress CA (TLS interception for method limits): the certificate, public, and
 * its private key sealed by the caller (SecretBox); the store never sees the key in clear.
 */
export interface StoredEgressCa {
  environmentId: string;
  certificatePem: string;
  sealedPrivateKey: string;
  createdAt: string;
}

/**
 * A web UI sign-in session as stored: the SHA-256 (hex) of its id, never the id (the cookie's
 * value), and the token it stands for.
 */
export interface StoredWebSession {
  idHash: string;
  tokenId: string;
  createdAt: string;
  usedAt: string;
  /** The session ends at this time however much it is used. */
  expiresAt: string;
}

/** A Slack thread that carries a task (src/integrations/slack/). */
export interface SlackThread {
  channel: string;
  /** The `ts` of the message that started the thread. */
  threadTs: string;
  taskId: string;
  /** The `ts` of Berth's progress reply in the thread (edited as phases pass). */
  replyTs: string | null;
  /** Who asked (Slack user id). */
  slackUserId: string;
  createdAt: string;
}

/** A turn Berth follows in a Slack thread until its final message is posted. */
export interface SlackTurn {
  id: string;
  channel: string;
  threadTs: string;
  /** The progress reply edited as phases pass (null: it could not be posted). */
  replyTs: string | null;
  taskId: string;
  /** A follow-up turn's attempts; null: all of the task's. */
  attemptIds: string[] | null;
  slackUserId: string;
  createdAt: string;
}

/** A new template (migration 0017): the template as written, validated. */
export interface NewTemplate {
  id: string;
  spec: TemplateSpec;
  createdByTokenId: string | null;
  now: string;
}

export interface TemplateChange {
  spec: TemplateSpec;
  now: string;
  /** The update fails with `conflict` if the stored revision differs. */
  expectedRevision: number;
}

/** What an environment that extends a template wrote (its stored spec is the merge). */
export interface WrittenSpec {
  extends: string;
  spec: unknown;
}

export interface Store {
  /** Brings the schema up to date (idempotent; safe to call on every start). */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /** Stores an environment with its secrets in one transaction; `conflict` if the name exists. */
  createEnvironment(environment: NewEnvironment): Promise<StoredEnvironment>;
  getEnvironmentById(id: string): Promise<StoredEnvironment | undefined>;
  getEnvironmentByName(name: string): Promise<StoredEnvironment | undefined>;
  /** All environments, ordered by name. */
  listEnvironments(): Promise<StoredEnvironment[]>;
  /**
   * Replaces the spec and applies the secret changes in one transaction, bumping the revision.
   * `not_found` if the id is unknown. The name may not change (`spec.name` must match).
   */
  updateEnvironment(id: string, change: EnvironmentChange): Promise<StoredEnvironment>;
  /** Deletes the environment, its secrets and its egress CA; false if there was none. */
  deleteEnvironment(id: string): Promise<boolean>;

  // ---- templates (migration 0017_templates; template-tables.ts) ----

  /** Stores a template; `conflict` if the name exists. */
  createTemplate(template: NewTemplate): Promise<Template>;
  getTemplateByName(name: string): Promise<Template | undefined>;
  /** All templates, ordered by name. */
  listTemplates(): Promise<Template[]>;
  updateTemplate(name: string, change: TemplateChange): Promise<Template>;
  deleteTemplate(name: string): Promise<boolean>;
  /** The names of the templates that extend `name` directly. */
  listTemplatesExtending(name: string): Promise<string[]>;
  /** Replaces (or with undefined removes) what an environment wrote when it extends a template. */
  putWrittenSpec(environmentId: string, written: WrittenSpec | undefined): Promise<void>;
  getWrittenSpec(environmentId: string): Promise<WrittenSpec | undefined>;
  /** The ids of the environments that extend one of `names` directly. */
  listEnvironmentsExtending(names: readonly string[]): Promise<string[]>;

  /** Names of the secrets stored for an environment, sorted. */
  listSecretNames(environmentId: string): Promise<string[]>;
  /** The sealed secrets of an environment, for the lifecycle to open. */
  getSecretCiphertexts(environmentId: string): Promise<SealedSecret[]>;

  /** `conflict` if an unrevoked token has the same name. */
  createToken(token: NewToken): Promise<Token>;
  getTokenById(id: string): Promise<Token | undefined>;
  /** The unrevoked token with this name. */
  getActiveTokenByName(name: string): Promise<Token | undefined>;
  /** The token (revoked or not) whose value hashes to `hash`. */
  getTokenByHash(hash: string): Promise<Token | undefined>;
  /** All tokens, revoked ones included, ordered by creation. */
  listTokens(): Promise<Token[]>;
  touchToken(id: string, now: string): Promise<void>;
  /**
   * Marks the token revoked and drops its memberships and web sessions, in one transaction;
   * returns it, or undefined if unknown. Revoking twice keeps the first time.
   */
  revokeToken(id: string, now: string): Promise<Token | undefined>;
  countActiveAdminTokens(): Promise<number>;

  // ---- tasks and attempts (the queue is the attempts table, with leases) ----

  /** Stores a task and its (queued) attempts in one transaction. */
  createTask(task: Task, attempts: readonly Attempt[]): Promise<void>;
  getTask(id: string): Promise<Task | undefined>;
  /** Newest first. */
  listTasks(options?: TaskListOptions): Promise<Task[]>;
  updateTaskStatus(id: string, status: TaskStatus, now: string): Promise<void>;
  /** Adds a queued follow-up turn to its task and picks it, in one transaction. */
  addFollowUpAttempt(attempt: Attempt, now: string): Promise<void>;
  /** Records the attempt picked for the task (the caller checked it belongs to the task). */
  pickAttempt(taskId: string, attemptId: string, now: string): Promise<void>;
  getAttempt(id: string): Promise<LeasedAttempt | undefined>;
  /** A task's attempts by index. */
  listAttempts(taskId: string): Promise<LeasedAttempt[]>;
  /**
   * Claims the oldest queued attempt in one transaction: moves it to `creating` and gives it a
   * lease until `now + leaseMs`. Two claimers never get the same attempt.
   */
  claimNextAttempt(options: ClaimOptions): Promise<LeasedAttempt | undefined>;
  /** Extends a lease held by `owner`; false if the lease is no longer its own. */
  renewAttemptLease(id: string, owner: string, now: string, leaseMs: number): Promise<boolean>;
  /** Applies a change when the condition holds; false when it did not (nothing changed). */
  updateAttempt(id: string, change: AttemptChange, condition?: AttemptCondition): Promise<boolean>;
  /** How many attempts `owner` holds a lease on that has not expired at `now`. */
  countLiveLeases(owner: string, now: string): Promise<number>;
  /** Live attempts (claimed, not finished) whose lease expired before `now`. */
  listExpiredAttempts(now: string): Promise<LeasedAttempt[]>;
  /**
   * Takes over the lease of a live attempt whose lease expired before `now` (its orchestrator
   * died) and that is still in `phase`: the lease becomes `owner`'s until `now + leaseMs`. One
   * statement, so of several orchestrators recovering at once exactly one gets true.
   */
  takeOverExpiredAttempt(
    id: string,
    phase: AttemptPhase,
    owner: string,
    now: string,
    leaseMs: number,
  ): Promise<boolean>;
  /** Puts an attempt whose lease `owner` holds back in the queue (no lease, not started). */
  requeueAttempt(id: string, owner: string): Promise<boolean>;
  /**
   * Records a cancel request for a claimed attempt that has not finished (whichever orchestrator
   * runs it); false when there is none such.
   */
  requestAttemptCancel(id: string, now: string): Promise<boolean>;
  /** The attempts leased by `owner` that have a cancel request. */
  listCancelRequests(owner: string): Promise<string[]>;
  /**
   * Appends events to one attempt's log. With `writer`, a conditional write decided in the store
   * (one transaction that first locks the attempt's row, so a takeover cannot come between the
   * check and the write): only while the attempt is that orchestrator's — it holds the lease, or
   * the attempt finished with no lease (its own end) — and only when the log ends right before
   * the first event (nobody else wrote since). False when the condition failed: nothing written.
   */
  appendAttemptEvents(
    events: readonly AttemptEvent[],
    writer?: AttemptEventWriter,
  ): Promise<boolean>;
  /** An attempt's events with `seq` above `afterSeq`, in order. */
  listAttemptEvents(attemptId: string, afterSeq?: number, limit?: number): Promise<AttemptEvent[]>;

  // ---- cache entries (recorded only after their image was committed) ----

  findLiveCacheEntry(
    environmentId: string,
    key: string,
    now: string,
  ): Promise<CacheEntry | undefined>;
  latestCacheEntry(environmentId: string): Promise<CacheEntry | undefined>;
  publishCacheEntry(entry: CacheEntry): Promise<void>;
  /** Newest first; all environments when none is given. */
  listCacheEntries(environmentId?: string): Promise<CacheEntry[]>;
  deleteCacheEntries(ids: readonly string[]): Promise<void>;
  /**
   * Records that the environment's cache was reset by hand (`berth env cache reset`) at `at`, so
   * the next build's log says so whichever orchestrator runs it; cleared when an entry of the
   * environment is published.
   */
  recordCacheReset(environmentId: string, at: string): Promise<void>;
  /** When the environment's cache was reset by hand, if no entry was published since. */
  getCacheResetAt(environmentId: string): Promise<string | undefined>;

  // ---- usage (migration 0018_usage; issue 17) ----

  /** Stores a finished attempt's usage (again: replaced). */
  recordAttemptUsage(usage: AttemptUsage): Promise<void>;
  getAttemptUsage(attemptId: string): Promise<AttemptUsage | undefined>;
  /** Sums of the attempts finished in [from, to), grouped; only these environments' when given. */
  summarizeUsage(options: {
    from: string;
    to: string;
    by: UsageGrouping;
    environmentIds?: readonly string[];
  }): Promise<UsageGroup[]>;
  /** Model tokens (in + out) of the environment's attempts finished since `since`. */
  tokensUsedSince(environmentId: string, since: string): Promise<number>;
  /** Attempts of the environment's tasks created since `since`. */
  attemptsCreatedSince(environmentId: string, since: string): Promise<number>;

  // ---- agent conversations (a follow-up resumes its parent attempt's) ----

  /**
   * Stores the model conversation of an attempt (the caller masked and bounded it), replacing
   * the one stored before; removed with the attempt.
   */
  putConversation(attemptId: string, messages: readonly ChatMessage[], now: string): Promise<void>;
  /** The conversation stored for an attempt, or undefined (a `--command` run, an older attempt). */
  getConversation(attemptId: string): Promise<ChatMessage[] | undefined>;

  // ---- cache builds (who builds a missing cache entry; shared by every orchestrator) ----

  /**
   * Claims the build of (environment, key) for `owner` until `now + leaseMs`, atomically: true
   * when the build was free, its lease had expired (the builder died), or it is `owner`'s
   * already; false while another owner's lease runs. Two claimers never both get true.
   */
  claimCacheBuild(request: CacheBuildRequest): Promise<boolean>;
  /** Extends `owner`'s lease; false when the claim is no longer its own. */
  renewCacheBuild(request: CacheBuildRequest): Promise<boolean>;
  /** Drops `owner`'s claim (the entry was published or the build failed); others' are kept. */
  releaseCacheBuild(environmentId: string, key: string, owner: string): Promise<void>;
  /** The current claim, live or expired. */
  getCacheBuild(environmentId: string, key: string): Promise<CacheBuildClaim | undefined>;
  // ---- GitHub (migration 0016_github; src/adapters/store/sql/github-tables.ts) ----

  /**
   * Takes a webhook delivery by its `X-GitHub-Delivery` id: true the first time, false for a
   * redelivery (atomic: of two servers taking one id at once, one gets true).
   */
  claimGitHubDelivery(deliveryId: string, event: string, now: string): Promise<boolean>;
  /** Drops delivery ids received before `before`; how many. */
  pruneGitHubDeliveries(before: string): Promise<number>;

  /** Drops claims whose lease ran out before `now` (builders that died); returns how many. */
  deleteExpiredCacheBuilds(now: string): Promise<number>;

  // ---- egress CAs (one per environment; deleted with the environment) ----

  getEgressCa(environmentId: string): Promise<StoredEgressCa | undefined>;
  /**
   * Stores the environment's CA unless it has one already, and returns the one stored: when two
   * orchestrators create one at once, the first write wins and both use it.
   */
  putEgressCaIfAbsent(ca: StoredEgressCa): Promise<StoredEgressCa>;
  // ---- web UI sessions (migration 0014; a token's go when it is revoked) ----

  /**
   * Stores a session and drops its token's oldest sessions beyond `keepPerToken`, in one
   * transaction (another token's sessions are never touched).
   */
  createWebSession(session: StoredWebSession, keepPerToken: number): Promise<void>;
  getWebSession(idHash: string): Promise<StoredWebSession | undefined>;
  touchWebSession(idHash: string, usedAt: string): Promise<void>;
  deleteWebSession(idHash: string): Promise<void>;
  /** Drops sessions past their expiry at `now` or unused since before `usedBefore`; how many. */
  deleteExpiredWebSessions(now: string, usedBefore: string): Promise<number>;

  // ---- Slack (migration 0015_slack; src/adapters/store/sql/slack-tables.ts) ----

  /** True the first time `eventId` is claimed, false on every later claim (across restarts). */
  claimSlackEvent(eventId: string, now: string): Promise<boolean>;
  /** Forgets event ids received before `before`; returns how many. */
  pruneSlackEvents(before: string): Promise<number>;
  /** Links a Slack user to a token (replacing the user's earlier link). */
  linkSlackUser(slackUserId: string, tokenId: string, now: string): Promise<void>;
  /** The live (unrevoked) token a Slack user is linked to. */
  getSlackUserToken(slackUserId: string): Promise<Token | undefined>;
  putSlackThread(thread: SlackThread): Promise<void>;
  getSlackThread(channel: string, threadTs: string): Promise<SlackThread | undefined>;
  /** Records a turn followed in a thread (migration 0015_slack_turns). */
  putSlackTurn(turn: SlackTurn): Promise<void>;
  /** Its final message was posted (or given up on): no restart follows it again. */
  finishSlackTurn(id: string, now: string): Promise<void>;
  /** The turns whose final message was not posted yet. */
  listOpenSlackTurns(): Promise<SlackTurn[]>;
}
