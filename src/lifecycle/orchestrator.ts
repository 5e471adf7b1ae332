import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import type { ImageEngine } from '../images/image-engine.js';
import type { Task } from '../domain/task/task.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import type { Store, StoredEnvironment } from '../ports/store.js';
import type { AgentPhase } from './agent-phase.js';
import { AttemptRunner, type AttemptRunnerOptions } from './attempt-runner.js';
import { CacheBuildLock } from './cache-build-lock.js';
import { CacheBuildLease } from './cache-build-lease.js';
import { DiskWatchdog } from './disk-watchdog.js';
import { CacheCollector } from './cache-collector.js';
import { CommandAgent } from './command-agent.js';
import { resolveImageName } from './image-names.js';
import { ForegroundActivity } from './foreground-activity.js';
import { NoNetworkEnforcer } from './network-policy-enforcer.js';
import { EgressEnforcer, type EgressEnforcerOptions } from '../egress/egress-enforcer.js';
import { EnvironmentCertificateAuthorities } from '../egress/environment-certificate-authorities.js';
import { SetupNetworkGuard } from '../egress/setup-network-guard.js';
import type { SecretBox } from '../secrets/secret-box.js';
import {
  Scheduler,
  leaseOwnerId,
  type AgentConversation,
  type SchedulerLogger,
} from './scheduler.js';
import { WarmPool } from './warm-pool.js';
import type { AttemptObserver } from './attempt-observer.js';
import { agentEnvironmentInfo } from '../agent/agent-environment-info.js';
import { ModelAgent } from '../agent/model-agent.js';
import type { ChatMessage, ModelClient } from '../ports/model-client.js';
import type { AgentLimitsOverride } from '../agent/agent-loop.js';

/** The agent for a prompt: the model loop, with what the environment offers in its system prompt. */
export function modelAgentFor(
  model: ModelClient,
  spec: EnvironmentSpec,
  limits: AgentLimitsOverride = {},
  task?: Task,
  conversation?: AgentConversation,
): AgentPhase {
  // The task's choice wins over the environment's, which wins over the server's.
  const modelName = task?.agent?.model ?? spec.model;
  return new ModelAgent({
    model,
    ...(conversation?.history ? { history: conversation.history } : {}),
    ...(conversation ? { saveConversation: (m: ChatMessage[]) => conversation.save(m) } : {}),
    limits: { ...limits, ...(task?.agent?.limits ?? {}) },
    ...(modelName !== undefined ? { modelName } : {}),
    environment: agentEnvironmentInfo(spec),
  });
}

/**
 * The task lifecycle put together once, for `berth serve` and `berth run` alike: the attempt
 * runner (with one cache build lock for the whole orchestrator), the scheduler with its queue,
 * and the cache collector as its housekeeping.
 */

export interface OrchestratorOptions {
  store: Store;
  /** Builds `image: { dockerfile }` images (issue 16); without it they are refused. */
  imageEngine?: Pick<ImageEngine, 'imageId' | 'build'> | undefined;
  runtime: SandboxRuntime;
  openSecrets(environment: StoredEnvironment): Promise<Record<string, string>>;
  /** The model for prompts; undefined when none is configured (tasks then need a command). */
  model?: ModelClient | undefined;
  agentLimits?: AgentLimitsOverride | undefined;
  /** Only these tasks are claimed (a `berth run` sharing a data directory runs its own only). */
  onlyTasks?: ReadonlySet<string> | undefined;
  cacheTtlMs: number;
  snapshotTtlMs: number;
  allowLocalRepositories: boolean;
  /** Host keys of ssh repositories trusted on first use, a file per environment (see AttemptRunnerOptions). */
  knownHostsDir?: string | undefined;
  concurrency: number;
  maxAttempts: number;
  resolveImage?: ((name: string) => string) | undefined;
  /** Installs pinned language versions on top of the base image (see AttemptRunnerOptions). */
  prepareImage?: AttemptRunnerOptions['prepareImage'] | undefined;
  pollMs?: number | undefined;
  /** How long a cache build's claim in the store lasts unless renewed (default 30 s). */
  cacheBuildLeaseMs?: number | undefined;
  /** No attempt starts and no cache entry is built with less free disk than this (default 2048 MB). */
  minFreeDiskMb?: number | undefined;
  /** How often the disk watchdog measures the running sandboxes (default 2 s). */
  diskPollMs?: number | undefined;
  /** Keep a sandbox started ahead of time per cache entry (a long-running server; not `berth run`). */
  warmPool?: boolean | undefined;
  logger?: SchedulerLogger | undefined;
  /**
   * Address ranges the setup network reaches besides the public internet (`BERTH_SETUP_ALLOW`: a
   * site's mirror or proxy). Those of `egress.allow` are not opened for setup by themselves.
   */
  setupAllow?: readonly string[] | undefined;
  /** Internet policies `allowlist`/`on` through the egress proxy; without it the agent phase has no network. */
  egress?: EgressEnforcerOptions | undefined;
  /**
   * Seals each environment's egress CA key in the store (one CA per environment, kept across
   * restarts). Without it the CAs live in this process only.
   */
  secretBox?: SecretBox | undefined;
  /** Told of each attempt's claim, events and end (metrics, usage; attempt-observer.ts). */
  observers?: readonly AttemptObserver[] | undefined;
}

export interface Orchestrator {
  scheduler: Scheduler;
  collector: CacheCollector;
}

export function createOrchestrator(options: OrchestratorOptions): Orchestrator {
  const { store, runtime } = options;
  const owner = leaseOwnerId();
  // Background work (snapshot commits, warm-pool top-ups) waits for the running attempts' results.
  const foreground = new ForegroundActivity();
  const warmPool = options.warmPool
    ? new WarmPool(runtime, owner, { maxPerKey: options.concurrency, foreground })
    : undefined;
  const runner = new AttemptRunner({
    runtime,
    foreground,
    cache: store,
    enforcer: options.egress
      ? new EgressEnforcer({
          certificateAuthorities: new EnvironmentCertificateAuthorities(
            options.secretBox ? { store, box: options.secretBox } : {},
          ),
          ...options.egress,
        })
      : new NoNetworkEnforcer(),
    setupNetwork: new SetupNetworkGuard({
      allow: options.setupAllow ?? [],
      upstreamProxy: options.egress?.upstreamProxy,
    }),
    resolveImage: options.resolveImage ?? resolveImageName,
    ...(options.prepareImage ? { prepareImage: options.prepareImage } : {}),
    cacheTtlMs: options.cacheTtlMs,
    snapshotTtlMs: options.snapshotTtlMs,
    allowLocalRepositories: options.allowLocalRepositories,
    knownHostsDir: options.knownHostsDir,
    buildLock: new CacheBuildLock(),
    buildOwner: owner,
    cacheResetAt: (environmentId) => store.getCacheResetAt(environmentId),
    // One watchdog for every attempt of this orchestrator: one Engine API call per poll.
    diskWatchdog: new DiskWatchdog({
      usage: runtime.sandboxDiskUsage?.bind(runtime),
      ...(options.diskPollMs !== undefined ? { intervalMs: options.diskPollMs } : {}),
      onError: (error) =>
        options.logger?.warn(
          { error: error instanceof Error ? error.message : String(error) },
          'the disk watchdog could not measure the sandboxes',
        ),
    }),
    ...(options.minFreeDiskMb !== undefined ? { minFreeDiskMb: options.minFreeDiskMb } : {}),
    buildLease: new CacheBuildLease({
      store,
      ...(options.cacheBuildLeaseMs !== undefined ? { leaseMs: options.cacheBuildLeaseMs } : {}),
    }),
    ...(warmPool ? { warmPool } : {}),
  });
  const collector = new CacheCollector(store, runtime);
  const scheduler = new Scheduler({
    owner,
    imageEngine: options.imageEngine,
    ...(warmPool ? { warmPool } : {}),
    store,
    runner,
    runtime,
    openSecrets: (environment) => options.openSecrets(environment),
    agentFor: (task, spec, conversation) => {
      if (task.command !== null) return new CommandAgent(task.command);
      if (options.model)
        return modelAgentFor(options.model, spec, options.agentLimits, task, conversation);
      throw new Error('no agent: this task has no command and no model is configured');
    },
    concurrency: options.concurrency,
    maxAttempts: options.maxAttempts,
    ...(options.onlyTasks ? { onlyTasks: options.onlyTasks } : {}),
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    defaultBranch: {
      allowLocalRepositories: options.allowLocalRepositories,
      knownHostsDir: options.knownHostsDir,
      allow: options.setupAllow ?? [],
    },
    housekeeping: async () => {
      await collector.collect();
    },
    ...(options.observers ? { observers: options.observers } : {}),
  });
  return { scheduler, collector };
}
