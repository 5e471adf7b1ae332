import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import { templateDigests } from '../domain/environment/environment-template.js';
import { repositoryConfigNow } from './repository-config-now.js';
import { dockerfileImage, dockerfileOf } from './dockerfile-image.js';
import type { ImageEngine } from '../images/image-engine.js';
import { newId } from '../domain/ids.js';
import {
  isTerminalPhase,
  type AttemptPhase,
  type TerminalPhase,
} from '../domain/task/attempt-phase.js';
import type { AttemptEvent } from '../domain/task/attempt-event.js';
import type { Attempt, AttemptError } from '../domain/task/attempt.js';
import {
  taskStatusOfTurns,
  type Task,
  type TaskAgentOptions,
  type TaskRef,
} from '../domain/task/task.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { ChatMessage } from '../ports/model-client.js';
import type { SandboxRuntime, SandboxStats } from '../ports/sandbox-runtime.js';
import type { LeasedAttempt, Store, StoredEnvironment } from '../ports/store.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import type { AgentPhase } from './agent-phase.js';
import { AttemptRecorder, type AttemptEventListener } from './attempt-recorder.js';
import type { AttemptRunner } from './attempt-runner.js';
import { warmOwnerOf, type WarmPool } from './warm-pool.js';
import { validateBranch, validateSha } from './checkout.js';
import { findAssumedDefaultBranch, type AssumedBranchOptions } from './assumed-default-branch.js';
import { repositoryCredentials } from './repository-credentials.js';
import type { AttemptObserver, FinishedAttempt } from './attempt-observer.js';
import { checkBudgets } from '../usage/budget-check.js';

/**
 * The task queue: tasks and their attempts live in the store; attempts are claimed with a lease
 * (renewed while they run) and run by the AttemptRunner, a configurable number at once.
 *
 * Nothing is lost across a restart: on start-up and then every lease period, attempts whose lease
 * expired (their orchestrator died) are taken over by one orchestrator, their sandboxes and
 * networks removed; those that had not reached the agent phase start over from the queue (at most
 * twice), the others are failed with the phase they were in ("orchestrator restarted during
 * agent"). A cache entry is
 * recorded only after its image was committed, so a build cut short leaves no usable entry (its
 * image is collected by the cache collector).
 */

export interface SubmitTask {
  environmentId: string;
  prompt: string;
  command: string | null;
  ref: TaskRef;
  repository?: string | null;
  attempts: number;
  /** The task's own model and agent limits. */
  agent?: TaskAgentOptions | null;
  /** The submitting token's name (the API's `createdBy`). */
  createdBy?: string | null;
}

/** The model conversation an attempt's agent resumes and keeps (see stored-conversation.ts). */
export interface AgentConversation {
  /** The earlier turn's conversation, for a follow-up whose parent kept one. */
  history?: ChatMessage[];
  /** Stores this attempt's conversation (masked and bounded by the agent). */
  save(messages: ChatMessage[]): Promise<void>;
}

export interface SchedulerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface SchedulerOptions {
  store: Store;
  /** Builds `image: { dockerfile }` images (dockerfile-image.ts); without it they are refused. */
  imageEngine?: Pick<ImageEngine, 'imageId' | 'build'> | undefined;
  runner: AttemptRunner;
  runtime: SandboxRuntime;
  /** Opens the environment's sealed secrets (name → value) for setup and maintenance. */
  openSecrets(environment: StoredEnvironment): Promise<Record<string, string>>;
  /**
   * The agent phase of a task (a `CommandAgent` for `--command`, the model agent otherwise). The
   * model agent resumes `conversation.history` (a follow-up's parent's) and keeps its own with
   * `conversation.save`.
   */
  agentFor(task: Task, spec: EnvironmentSpec, conversation?: AgentConversation): AgentPhase;
  concurrency: number;
  maxAttempts?: number;
  /** This orchestrator's lease owner name (unique per process). */
  owner?: string;
  leaseMs?: number;
  pollMs?: number;
  /** When given, only attempts of these tasks are claimed (a `berth run` claims its own only). */
  onlyTasks?: ReadonlySet<string>;
  /** Drained when the scheduler stops (its sandboxes carry this scheduler's owner name). */
  warmPool?: WarmPool;
  /** Runs now and then (every 10 minutes and at start), for the cache collector. */
  housekeeping?: () => Promise<void>;
  logger?: SchedulerLogger;
  /**
   * Asks the remote for an environment's `assumed` default branch at an attempt's start
   * (assumed-default-branch.ts); without it, the assumed branch is used as it is.
   */
  defaultBranch?: Omit<AssumedBranchOptions, 'store'>;
  now?: () => Date;
  /** Told of each attempt's claim, events and end (metrics, usage); see attempt-observer.ts. */
  observers?: readonly AttemptObserver[];
}

interface Running {
  taskId: string;
  controller: AbortController;
  done: Promise<void>;
}

/** A lease owner name unique to this process (give the same one to the scheduler and its warm pool). */
export function leaseOwnerId(): string {
  return `orch-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * What an attempt taken over from another orchestrator says: that one stopped renewing the lease
 * (it was killed, restarted, or froze and stopped answering; from here they look the same).
 */
function takenOver(phase: AttemptPhase): string {
  return `taken over during ${phase}: its orchestrator stopped renewing the lease (killed, restarted or not answering)`;
}

const SILENT: SchedulerLogger = { info: () => undefined, warn: () => undefined };

/** Phases an attempt restarts from scratch in after an orchestrator restart (no agent work yet). */
const BEFORE_AGENT: readonly AttemptPhase[] = [
  'creating',
  'setup',
  'maintenance',
  'services',
  'lockdown',
];
/** How often an orchestrator looks for cancel requests made elsewhere for its attempts. */
const CANCEL_POLL_MS = 2_000;
/** How many times an attempt starts over before a restart fails it (a crash loop stops). */
const MAX_RESTARTS = 2;

export class Scheduler {
  readonly owner: string;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly now: () => Date;
  private readonly logger: SchedulerLogger;
  private readonly running = new Map<string, Running>();
  private readonly listeners = new Map<string, Set<AttemptEventListener>>();
  private readonly taskWaiters = new Set<() => void>();
  private wakeUp: (() => void) | undefined;
  private stopping = false;
  /** Set by a graceful stop: running attempts are handed back (see `stop`), not cancelled. */
  private interrupting = false;
  private loop: Promise<void> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private lastRecovery = 0;
  private lastHousekeeping = 0;

  constructor(private readonly options: SchedulerOptions) {
    this.owner = options.owner ?? leaseOwnerId();
    this.leaseMs = options.leaseMs ?? 30_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.now = options.now ?? (() => new Date());
    this.logger = options.logger ?? SILENT;
  }

  /** Recovers what a previous orchestrator left, then starts claiming attempts. */
  async start(): Promise<void> {
    if (this.loop !== undefined) return;
    await this.recover();
    // Every tick looks for cancel requests that another orchestrator recorded for this one's
    // attempts (a cancel stops an attempt within 5 s wherever it runs); leases are renewed every
    // third of their time.
    const renewEveryMs = Math.max(1_000, Math.floor(this.leaseMs / 3));
    let lastRenewal = Date.now();
    this.renewTimer = setInterval(
      () => {
        void this.stopCancelRequested();
        if (Date.now() - lastRenewal < renewEveryMs - CANCEL_POLL_MS / 2) return;
        lastRenewal = Date.now();
        void this.renewLeases();
      },
      Math.min(CANCEL_POLL_MS, renewEveryMs),
    );
    this.renewTimer.unref();
    this.loop = this.claimLoop();
  }

  /**
   * Stops claiming; then, for running attempts: `cancelRunning` cancels them (a `berth run` that
   * was interrupted); `interruptRunning` (a server's graceful stop) stops them and hands them back
   * as recovery would: one that had not reached the agent phase goes back to the queue for the
   * next start, a later one fails with "the orchestrator stopped during <phase>"; neither waits
   * for them to end on their own.
   */
  async stop(options: { cancelRunning?: boolean; interruptRunning?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.wakeUp?.();
    if (options.interruptRunning) this.interrupting = true;
    if (options.cancelRunning || options.interruptRunning)
      for (const r of this.running.values())
        r.controller.abort(new BerthError('cancelled', 'the orchestrator is stopping'));
    await this.loop;
    await Promise.all([...this.running.values()].map((r) => r.done));
    if (this.renewTimer !== undefined) clearInterval(this.renewTimer);
    await this.options.warmPool?.drain();
  }

  /** Creates a task with its queued attempts. Bad input is refused here, before anything runs. */
  async submit(input: SubmitTask): Promise<{ task: Task; attempts: Attempt[] }> {
    const max = this.options.maxAttempts ?? 8;
    if (!Number.isInteger(input.attempts) || input.attempts < 1 || input.attempts > max) {
      throw new BerthError(
        'invalid_input',
        `attempts must be a whole number from 1 to ${max} (got ${input.attempts}; the server's cap is BERTH_MAX_ATTEMPTS)`,
      );
    }
    if (input.ref.branch !== undefined && input.ref.sha !== undefined) {
      throw new BerthError('invalid_input', 'give a branch or a commit SHA, not both');
    }
    if (input.ref.branch !== undefined) validateBranch(input.ref.branch);
    const ref: TaskRef = {
      ...input.ref,
      ...(input.ref.sha !== undefined ? { sha: validateSha(input.ref.sha) } : {}),
    };
    const environment = await this.options.store.getEnvironmentById(input.environmentId);
    if (environment === undefined)
      throw new BerthError('not_found', `environment ${input.environmentId} not found`);
    await checkBudgets(this.options.store, environment, input.attempts, this.now());
    const now = this.now().toISOString();
    const task: Task = {
      id: newId('task'),
      environmentId: input.environmentId,
      prompt: input.prompt,
      command: input.command,
      ref,
      repository: input.repository ?? null,
      attemptCount: input.attempts,
      agent: input.agent ?? null,
      createdBy: input.createdBy ?? null,
      status: 'queued',
      createdAt: now,
      updatedAt: now,
    };
    const attempts: Attempt[] = Array.from({ length: input.attempts }, (_, index) => ({
      id: newId('attempt'),
      taskId: task.id,
      index,
      phase: 'queued',
      cacheHit: null,
      error: null,
      result: null,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
    }));
    await this.options.store.createTask(task, attempts);
    this.wakeUp?.();
    return { task, attempts };
  }

  /** Live events of an attempt run by this orchestrator; returns the unsubscribe function. */
  subscribe(attemptId: string, listener: AttemptEventListener): () => void {
    const set = this.listeners.get(attemptId) ?? new Set();
    set.add(listener);
    this.listeners.set(attemptId, set);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(attemptId);
    };
  }

  /**
   * Cancels every attempt of the task that has not finished: queued ones at once, running ones by
   * their signal, here or (through the request recorded in the store) in the orchestrator that
   * runs them, which looks for requests every CANCEL_POLL_MS.
   */
  async cancel(taskId: string): Promise<void> {
    const { store } = this.options;
    const attempts = await store.listAttempts(taskId);
    if (attempts.length === 0 && (await store.getTask(taskId)) === undefined) {
      throw new BerthError('not_found', `task ${taskId} not found`);
    }
    const now = this.now().toISOString();
    for (const attempt of attempts) {
      if (attempt.phase === 'queued') {
        const error: AttemptError = {
          code: 'cancelled',
          message: 'the attempt was cancelled before it started',
          details: {},
        };
        await store.updateAttempt(
          attempt.id,
          { phase: 'cancelled', error, finishedAt: now },
          { phases: ['queued'] },
        );
      }
      const here = this.running.get(attempt.id);
      if (here !== undefined)
        here.controller.abort(new BerthError('cancelled', 'cancelled by request'));
      else if (attempt.phase !== 'queued' && !isTerminalPhase(attempt.phase))
        await store.requestAttemptCancel(attempt.id, now);
    }
    await this.refreshTask(taskId);
  }

  /** Resolves with the task once every attempt has finished. */
  async waitForTask(taskId: string, signal?: AbortSignal): Promise<Task> {
    for (;;) {
      signal?.throwIfAborted();
      const attempts = await this.options.store.listAttempts(taskId);
      if (attempts.length > 0 && attempts.every((a) => isTerminalPhase(a.phase))) {
        await this.refreshTask(taskId);
        const task = await this.options.store.getTask(taskId);
        if (task) return task;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.taskWaiters.delete(wake);
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        const timer = setTimeout(wake, this.pollMs);
        this.taskWaiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /**
   * Recovers attempts whose lease expired (their orchestrator died): their sandboxes and networks
   * are removed; one that had not reached the agent phase starts over (back in the queue, at most
   * MAX_RESTARTS times), any other is failed with the phase it was in. Returns how many.
   */
  async recover(): Promise<number> {
    const { store } = this.options;
    this.lastRecovery = Date.now();
    const expired = await store.listExpiredAttempts(this.now().toISOString());
    let count = 0;
    for (const attempt of expired) {
      if (this.running.has(attempt.id)) continue;
      // Exactly one orchestrator takes the dead one's lease; it alone cleans up and decides.
      const taken = await store.takeOverExpiredAttempt(
        attempt.id,
        attempt.phase,
        this.owner,
        this.now().toISOString(),
        this.leaseMs,
      );
      if (!taken) continue;
      count++;
      // What is left must be gone before the attempt runs again (its network name is reused).
      const cleaned = await this.removeResources(attempt);
      const events = await this.allEvents(attempt.id);
      const last = events.at(-1)?.seq ?? 0;
      const restarts = events.filter(
        (e) => e.type === 'warning' && e.details?.reason === 'orchestrator_restart',
      ).length;
      const now = this.now().toISOString();
      // Started over only where someone will run it: a `berth run` (claiming its own tasks only)
      // fails what another run left, since nobody would take it from the queue.
      const willRun =
        this.options.onlyTasks === undefined || this.options.onlyTasks.has(attempt.taskId);
      if (willRun && cleaned && BEFORE_AGENT.includes(attempt.phase) && restarts < MAX_RESTARTS) {
        // Nothing the agent did is lost: it had not started. The attempt runs again from the top.
        await store.appendAttemptEvents(
          [
            {
              attemptId: attempt.id,
              seq: last + 1,
              at: now,
              type: 'warning',
              message: `${takenOver(attempt.phase)}; the attempt starts over`,
              details: {
                reason: 'orchestrator_restart',
                phase: attempt.phase,
                previousOwner: attempt.leaseOwner,
              },
            },
            { attemptId: attempt.id, seq: last + 2, at: now, type: 'phase', phase: 'queued' },
          ],
          { leaseOwner: this.owner },
        );
        await store.requeueAttempt(attempt.id, this.owner);
        await this.refreshTask(attempt.taskId);
        this.wakeUp?.();
        this.logger.warn(
          { attemptId: attempt.id, phase: attempt.phase },
          'attempt queued again: taken over from an orchestrator that stopped renewing its lease',
        );
        continue;
      }
      const error: AttemptError = {
        code: 'task_failed',
        message:
          takenOver(attempt.phase) +
          (restarts > 0 ? ` (the attempt had started over ${restarts} time(s) already)` : ''),
        details: {
          reason: 'orchestrator_restart',
          phase: attempt.phase,
          previousOwner: attempt.leaseOwner,
        },
      };
      // The log first, while this orchestrator holds the lease: once the attempt has ended (no
      // lease), the old owner's writes are refused because the log no longer ends where it left it.
      await store.appendAttemptEvents(
        [
          {
            attemptId: attempt.id,
            seq: last + 1,
            at: now,
            type: 'error',
            code: error.code,
            message: error.message,
            details: error.details,
          },
          { attemptId: attempt.id, seq: last + 2, at: now, type: 'phase', phase: 'failed' },
        ],
        { leaseOwner: this.owner },
      );
      await store.updateAttempt(
        attempt.id,
        { phase: 'failed', error, finishedAt: now },
        { leaseOwner: this.owner },
      );
      await this.refreshTask(attempt.taskId);
      this.logger.warn(
        { attemptId: attempt.id, phase: attempt.phase },
        'attempt failed: taken over from an orchestrator that stopped renewing its lease',
      );
    }
    await this.removeDeadWarmSandboxes();
    return count;
  }

  /** Every stored event of an attempt, page by page. */
  private async allEvents(attemptId: string): Promise<AttemptEvent[]> {
    const all: AttemptEvent[] = [];
    for (;;) {
      const page = await this.options.store.listAttemptEvents(
        attemptId,
        all.at(-1)?.seq ?? 0,
        5_000,
      );
      all.push(...page);
      if (page.length < 5_000) return all;
    }
  }

  /** Warm sandboxes (taken or not) of orchestrators that hold no live lease: they are gone. */
  private async removeDeadWarmSandboxes(): Promise<void> {
    const { runtime, store } = this.options;
    try {
      const now = this.now().toISOString();
      const alive = new Map<string, boolean>();
      for (const sandbox of await runtime.list({})) {
        const owner = warmOwnerOf(sandbox.name);
        if (owner === undefined || owner === this.owner) continue;
        if (!alive.has(owner)) alive.set(owner, (await store.countLiveLeases(owner, now)) > 0);
        if (alive.get(owner) === false) await runtime.remove(sandbox.id);
      }
    } catch (error) {
      this.logger.warn(
        { error: toBerthError(error).message },
        'could not remove warm sandboxes left behind',
      );
    }
  }

  /** Removes an attempt's sandboxes and networks; false when that could not be done. */
  private async removeResources(attempt: LeasedAttempt): Promise<boolean> {
    const { runtime } = this.options;
    const labels = { [BERTH_LABELS.attempt]: attempt.id };
    try {
      for (const sandbox of await runtime.list(labels)) await runtime.remove(sandbox.id);
      for (const network of await runtime.listNetworks(labels))
        await runtime.removeNetwork(network.name);
      return true;
    } catch (error) {
      this.logger.warn(
        { attemptId: attempt.id, error: toBerthError(error).message },
        'could not remove what an attempt left',
      );
      return false;
    }
  }

  private async claimLoop(): Promise<void> {
    const { store } = this.options;
    while (!this.stopping) {
      try {
        if (Date.now() - this.lastRecovery > this.leaseMs) await this.recover();
        if (
          this.options.housekeeping !== undefined &&
          Date.now() - this.lastHousekeeping > 10 * 60_000
        ) {
          this.lastHousekeeping = Date.now();
          await this.options
            .housekeeping()
            .catch((error: unknown) =>
              this.logger.warn({ error: toBerthError(error).message }, 'housekeeping failed'),
            );
        }
        while (!this.stopping && this.running.size < this.options.concurrency) {
          const only = this.options.onlyTasks;
          const attempt = await store.claimNextAttempt({
            ...(only !== undefined ? { taskIds: [...only] } : {}),
            owner: this.owner,
            now: this.now().toISOString(),
            leaseMs: this.leaseMs,
          });
          if (attempt === undefined) break;
          this.launch(attempt);
        }
      } catch (error) {
        this.logger.warn(
          { error: toBerthError(error).message },
          'the task queue could not be read',
        );
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wakeUp = undefined;
          resolve();
        }, this.pollMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          this.wakeUp = undefined;
          resolve();
        };
      });
    }
  }

  private launch(attempt: LeasedAttempt): void {
    const controller = new AbortController();
    const done = this.execute(attempt, controller.signal)
      .catch((error: unknown) => {
        this.logger.warn(
          { attemptId: attempt.id, error: toBerthError(error).message },
          'attempt bookkeeping failed',
        );
      })
      .finally(() => {
        this.running.delete(attempt.id);
        this.wakeUp?.();
        for (const wake of [...this.taskWaiters]) wake();
      });
    this.running.set(attempt.id, { taskId: attempt.taskId, controller, done });
  }

  /** How many attempts this orchestrator runs now (the metrics' node figures). */
  get runningCount(): number {
    return this.running.size;
  }

  private async execute(attempt: LeasedAttempt, signal: AbortSignal): Promise<void> {
    const claimedAt = this.now().toISOString();
    const watch: AttemptWatch = { lastPhase: attempt.phase };
    this.observe((o) =>
      o.claimed?.({
        attemptId: attempt.id,
        taskId: attempt.taskId,
        queuedAt: attempt.createdAt,
        claimedAt,
      }),
    );
    try {
      await this.executeAttempt(attempt, signal, watch);
    } finally {
      if (watch.end !== undefined && watch.task !== undefined) {
        const finished: FinishedAttempt = {
          attemptId: attempt.id,
          taskId: attempt.taskId,
          environmentId: watch.task.environmentId,
          createdBy: watch.task.createdBy ?? null,
          outcome: watch.end.phase,
          lastPhase: watch.lastPhase,
          claimedAt,
          finishedAt: watch.end.at,
          ...(watch.tokens ? { tokens: watch.tokens } : {}),
          ...(watch.sandbox ? { sandbox: watch.sandbox } : {}),
        };
        await Promise.all(
          (this.options.observers ?? []).map(async (o) => {
            try {
              await o.finished?.(finished);
            } catch (error) {
              this.logger.warn(
                { attemptId: attempt.id, error: toBerthError(error).message },
                "an observer could not record the attempt's end",
              );
            }
          }),
        );
      }
    }
  }

  /** Calls each observer; a failure in one is its own (see attempt-observer.ts). */
  private observe(call: (observer: AttemptObserver) => void): void {
    for (const observer of this.options.observers ?? []) {
      try {
        call(observer);
      } catch {
        // Counting never changes an attempt.
      }
    }
  }

  private async executeAttempt(
    attempt: LeasedAttempt,
    signal: AbortSignal,
    watch: AttemptWatch,
  ): Promise<void> {
    const { store } = this.options;
    const listeners = this.listeners.get(attempt.id) ?? new Set<AttemptEventListener>();
    this.listeners.set(attempt.id, listeners);
    // An attempt that started over after a restart numbers its events on from its earlier ones.
    const lastSeq = (await this.allEvents(attempt.id)).at(-1)?.seq ?? 0;
    const recorder = new AttemptRecorder(
      store,
      attempt.id,
      this.owner,
      listeners,
      this.now,
      lastSeq,
    );
    // A graceful stop decides the attempt's end itself (see `interrupted`): the runner's own
    // "cancelled" error and phase are left out of the log then.
    let lastPhase: AttemptPhase = attempt.phase;
    const emit: typeof recorder.emit = (event) => {
      if (event.type === 'phase' && !isTerminalPhase(event.phase)) {
        lastPhase = event.phase;
        watch.lastPhase = event.phase;
      }
      const cancelledEnd =
        (event.type === 'error' && event.code === 'cancelled') ||
        (event.type === 'phase' && event.phase === 'cancelled');
      if (cancelledEnd && this.interrupting && signal.aborted) return;
      recorder.emit(event);
      this.observe((o) => o.event?.(attempt.id, event));
    };
    const finish = async (change: Parameters<Store['updateAttempt']>[1]) => {
      if (change.phase !== undefined && isTerminalPhase(change.phase))
        watch.end = { phase: change.phase, at: this.now().toISOString() };
      await recorder.flush().catch(() => undefined);
      await store.updateAttempt(
        attempt.id,
        { ...change, finishedAt: this.now().toISOString() },
        { leaseOwner: this.owner },
      );
      await this.refreshTask(attempt.taskId);
      if (this.listeners.get(attempt.id)?.size === 0) this.listeners.delete(attempt.id);
    };
    try {
      const task = await store.getTask(attempt.taskId);
      if (task === undefined) throw new BerthError('not_found', `task ${attempt.taskId} not found`);
      watch.task = task;
      await this.refreshTask(task.id);
      let environment = await store.getEnvironmentById(task.environmentId);
      if (environment === undefined) {
        throw new BerthError('not_found', `the environment of task ${task.id} was deleted`);
      }
      const secrets = await this.options.openSecrets(environment);
      // An assumed default branch is asked of the remote before the cache key is computed (a
      // follow-up clones nothing; a task's own repository is not the environment's).
      if (
        this.options.defaultBranch !== undefined &&
        attempt.followUp == null &&
        task.repository == null
      ) {
        const found = await findAssumedDefaultBranch(
          environment,
          repositoryCredentials(environment.spec, secrets),
          { store, ...this.options.defaultBranch },
        );
        environment = found.environment;
        if (found.log !== undefined)
          emit({ type: 'log', stream: 'system', text: `${found.log}\n` });
      }
      // `repository.config`: the repository file's fields at the default branch's head, and its
      // content in the cache key; a bad file fails the attempt here, before any sandbox (a
      // follow-up starts from its snapshot; a task's own repository is not the environment's).
      // A local repository is still held to the server's --allow-local-repos by the checkout.
      let repositoryFile: { path: string; digest: string } | undefined;
      // A task on another branch: that branch's file for maintenance and the agent; the cache key
      // and setup from the default branch's (`cacheSpec`).
      let cacheSpec: EnvironmentSpec | undefined;
      if (attempt.followUp == null && task.repository == null) {
        const fromRepository = await repositoryConfigNow(
          environment,
          (await store.getWrittenSpec(environment.id))?.spec,
          async (name) => (await store.getTemplateByName(name))?.spec,
          {
            allowLocal: true,
            taskBranch: task.ref.branch,
            signal,
            // An https, http, git:// or ssh repository's file is fetched on the host as the
            // checkout fetches: its credentials, the vetted address only (BERTH_SETUP_ALLOW).
            remote: {
              credentials: repositoryCredentials(environment.spec, secrets),
              addressPolicy: { allow: this.options.defaultBranch?.allow ?? [] },
              knownHostsFile:
                this.options.defaultBranch?.knownHostsDir === undefined
                  ? undefined
                  : join(this.options.defaultBranch.knownHostsDir, environment.id),
            },
          },
        );
        if (fromRepository !== undefined) {
          environment = { ...environment, spec: fromRepository.spec };
          repositoryFile = fromRepository.file;
          emit({
            type: 'log',
            stream: 'system',
            text: `repository file ${fromRepository.file.path} at ${fromRepository.commit.slice(0, 12)}\n`,
          });
          cacheSpec = fromRepository.cacheSpec;
          const note = fromRepository.branchNote;
          if (note?.kind === 'warning') emit({ type: 'warning', message: note.text });
          if (note?.kind === 'log') emit({ type: 'log', stream: 'system', text: `${note.text}\n` });
        }
      }
      // `image: { dockerfile }`: the image built from the repository's Dockerfile (once per
      // context tree; its id is the key's base image). Its output is the build's, untrusted.
      if (dockerfileOf(environment.spec.image) !== undefined) {
        if (this.options.imageEngine === undefined)
          throw new BerthError('internal', 'this server has no image engine to build images with');
        const image = await dockerfileImage(this.options.imageEngine, environment, {
          allowLocal: true,
          onProgress: (line) => emit({ type: 'log', stream: 'stdout', text: `${line}\n` }),
          signal,
        });
        if (image !== undefined) {
          emit({
            type: 'log',
            stream: 'system',
            text: `image ${image.ref} (${image.id}) ${image.built ? 'built' : 'already built'} from ${dockerfileOf(environment.spec.image) ?? ''} at ${image.commit.slice(0, 12)}\n`,
          });
          environment = { ...environment, spec: { ...environment.spec, image: image.ref } };
        }
      }
      // A follow-up turn has its own prompt or command and starts from its parent's snapshot. It
      // resumes the parent's conversation when one was kept, asked the request as written; else
      // it is asked the request with the earlier prompt and final message in front of it.
      const followUp = attempt.followUp ?? undefined;
      const history =
        followUp && followUp.command === null
          ? await store.getConversation(followUp.parentAttemptId)
          : undefined;
      const prompt = followUp
        ? history !== undefined
          ? followUp.request
          : followUp.prompt
        : task.prompt;
      const conversation: AgentConversation = {
        ...(history !== undefined ? { history } : {}),
        save: (messages) => store.putConversation(attempt.id, messages, this.now().toISOString()),
      };
      const outcome = await this.options.runner.run({
        attemptId: attempt.id,
        taskId: task.id,
        environment: {
          id: environment.id,
          // `berth env test` asks for the lifecycle up to lockdown and its command: no verify.
          spec: taskSpec(task, environment.spec),
          // The templates it extends are part of its cache key ("template NAME changed").
          templates: await templateDigests(
            environment.spec,
            async (name) => (await store.getTemplateByName(name))?.spec,
          ),
          repositoryFile,
          ...(cacheSpec !== undefined ? { cacheSpec } : {}),
        },
        // A task on a fork's code: setup and maintenance get none of the environment's secrets.
        secrets: task.agent?.withoutSecrets === true ? {} : secrets,
        ref: task.ref,
        repository: task.repository ?? undefined,
        // The environment's git credentials, for its own repository only (the checkout's helper).
        credentials: repositoryCredentials(environment.spec, secrets, task.repository),
        prompt,
        agent: this.options.agentFor(
          followUp ? { ...task, prompt, command: followUp.command } : task,
          environment.spec,
          conversation,
        ),
        resume: attempt.followUp
          ? {
              image: attempt.followUp.snapshotImage,
              parentAttemptId: attempt.followUp.parentAttemptId,
              baseCommit: attempt.followUp.baseCommit,
            }
          : undefined,
        emit,
        signal,
        returnEarly: true,
        onSandboxStats: (stats) => (watch.sandbox = stats),
      });
      const usage = outcome.result?.usage;
      if (usage) watch.tokens = { input: usage.promptTokens, output: usage.completionTokens };
      if (outcome.phase === 'cancelled' && this.interrupting && signal.aborted) {
        await outcome.settled;
        await this.interrupted(attempt, recorder, outcome.error, finish);
        return;
      }
      await finish({
        phase: outcome.phase,
        cacheHit: outcome.cacheHit,
        error: outcome.error,
        result: outcome.result,
      });
      // The result is recorded; the snapshot commit and the clean-up may still run (the attempt
      // keeps its slot and its lease until they end).
      if (outcome.settled !== undefined) {
        await outcome.settled;
        await recorder.flush().catch(() => undefined);
      }
    } catch (thrown) {
      if (this.interrupting && signal.aborted) {
        const phase = lastPhase;
        await this.interrupted(
          attempt,
          recorder,
          { code: 'cancelled', message: '', details: { phase } },
          finish,
        );
        return;
      }
      const error = toBerthError(thrown);
      await failAttempt(
        recorder,
        { code: error.code, message: error.message, details: error.details },
        finish,
      );
    }
  }

  /**
   * An attempt stopped by a graceful stop of this orchestrator, its sandbox already removed: back
   * to the queue when it had not reached the agent phase (nothing the agent did is lost), else
   * failed with the phase it was in.
   */
  private async interrupted(
    attempt: LeasedAttempt,
    recorder: AttemptRecorder,
    cancelled: AttemptError | null,
    finish: (change: Parameters<Store['updateAttempt']>[1]) => Promise<void>,
  ): Promise<void> {
    const phase = (cancelled?.details.phase ?? 'creating') as AttemptPhase;
    if (BEFORE_AGENT.includes(phase)) {
      recorder.emit({
        type: 'warning',
        message: `the orchestrator stopped during ${phase}; the attempt starts over on the next start`,
        details: { reason: 'orchestrator_stop', phase },
      });
      recorder.emit({ type: 'phase', phase: 'queued' });
      await recorder.flush().catch(() => undefined);
      await this.options.store.requeueAttempt(attempt.id, this.owner);
      await this.refreshTask(attempt.taskId);
      this.logger.warn(
        { attemptId: attempt.id, phase },
        'attempt queued again: orchestrator stopped',
      );
      return;
    }
    const error: AttemptError = {
      code: 'task_failed',
      message: `the orchestrator stopped during ${phase}`,
      details: { reason: 'orchestrator_stop', phase },
    };
    await failAttempt(recorder, error, finish);
    this.logger.warn({ attemptId: attempt.id, phase }, 'attempt failed: orchestrator stopped');
  }

  /** Stops this orchestrator's attempts that a cancel asked elsewhere is waiting for. */
  private async stopCancelRequested(): Promise<void> {
    if (this.running.size === 0) return;
    try {
      for (const id of await this.options.store.listCancelRequests(this.owner))
        this.running.get(id)?.controller.abort(new BerthError('cancelled', 'cancelled by request'));
    } catch (error) {
      this.logger.warn(
        { error: toBerthError(error).message },
        'could not look for cancel requests',
      );
    }
  }

  private async renewLeases(): Promise<void> {
    for (const [attemptId, running] of this.running) {
      try {
        const ok = await this.options.store.renewAttemptLease(
          attemptId,
          this.owner,
          this.now().toISOString(),
          this.leaseMs,
        );
        if (!ok)
          running.controller.abort(
            new BerthError('cancelled', 'the attempt was taken over (its lease was lost)'),
          );
      } catch (error) {
        this.logger.warn(
          { attemptId, error: toBerthError(error).message },
          'could not renew a lease',
        );
      }
    }
  }

  private async refreshTask(taskId: string): Promise<void> {
    const attempts = await this.options.store.listAttempts(taskId);
    if (attempts.length === 0) return;
    // The latest turn decides (a follow-up after a failed attempt; see taskStatusOfTurns).
    const status = taskStatusOfTurns(attempts);
    const task = await this.options.store.getTask(taskId);
    if (task !== undefined && task.status !== status) {
      await this.options.store.updateTaskStatus(taskId, status, this.now().toISOString());
    }
  }
}

/**
 * The spec an attempt of `task` runs with: without `verify` for `berth env test`, with the
 * internet off for a read-only task (`@berth review`).
 */
function taskSpec(task: Task, spec: EnvironmentSpec): EnvironmentSpec {
  const verified = task.agent?.skipVerify === true ? withoutVerify(spec) : spec;
  if (task.agent?.readOnly !== true) return verified;
  return { ...verified, internet: { access: 'off', presets: [], domains: [], tunnelOnly: [] } };
}

/** What the scheduler notes of a running attempt for its observers. */
interface AttemptWatch {
  task?: Task;
  lastPhase: AttemptPhase;
  end?: { phase: TerminalPhase; at: string };
  tokens?: { input: number; output: number };
  sandbox?: SandboxStats;
}

/** The spec without its `verify` command (the cache key does not include it). */
function withoutVerify(spec: EnvironmentSpec): EnvironmentSpec {
  const rest = { ...spec };
  delete rest.verify;
  delete rest.verifyRequired;
  return rest;
}

/** Logs the error and the failed phase, then records the attempt as failed with it. */
async function failAttempt(
  recorder: AttemptRecorder,
  error: AttemptError,
  finish: (change: Parameters<Store['updateAttempt']>[1]) => Promise<void>,
): Promise<void> {
  recorder.emit({
    type: 'error',
    code: error.code,
    message: error.message,
    details: error.details,
  });
  recorder.emit({ type: 'phase', phase: 'failed' });
  await finish({ phase: 'failed', error });
}
