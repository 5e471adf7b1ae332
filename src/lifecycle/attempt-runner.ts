import { join } from 'node:path';
import { newId } from '../domain/ids.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import { isCacheEntryLive, type CacheEntry } from '../domain/cache/cache-entry.js';
import {
  cacheKey,
  cacheKeyParts,
  explainChange,
  type CacheKeyParts,
} from '../domain/cache/cache-key.js';
import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { AttemptPhase } from '../domain/task/attempt-phase.js';
import type { AttemptError, AttemptResult } from '../domain/task/attempt.js';
import type { CommandRecord } from '../domain/task/command-record.js';
import type { TaskRef } from '../domain/task/task.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type {
  ExecResult,
  SandboxResources,
  SandboxRuntime,
  SandboxStats,
} from '../ports/sandbox-runtime.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import { scriptSecrets } from '../domain/environment/internet-grants.js';
import { injectedCredentials } from '../domain/internet/injected-credentials.js';
import { SecretMasker } from '../secrets/secret-masker.js';
import { agentDeadline, type AgentPhase } from './agent-phase.js';
import { CacheBuildLock } from './cache-build-lock.js';
import { CacheBuildLease } from './cache-build-lease.js';
import { DiskWatchdog } from './disk-watchdog.js';
import { FreeDiskFloor } from './free-disk-floor.js';
import type { CacheEntries } from './cache-entries.js';
import {
  checkoutRef,
  cloneRepository,
  bundleLocalRepository,
  bundleSshRepository,
  localBranchHead,
  parseRepositoryLocation,
  type CheckoutContext,
  type GitCredentials,
} from './checkout.js';
import type { NetworkPolicyEnforcer } from './network-policy-enforcer.js';
import { PhaseOutput } from './phase-output.js';
import { collectChanges } from './results.js';
import type { SandboxContext } from './sandbox-context.js';
import { readExports, runLifecycleScript } from './script-runner.js';
import { startServices } from './services.js';
import { runVerification } from './verify-phase.js';
import { imageMissing } from '../runtime/image-missing.js';
import {
  recordTurnStart,
  startFromSnapshot,
  turnDiff,
  type FollowUpStart,
} from './follow-up-turn.js';
import type { WarmPool, WarmSpec } from './warm-pool.js';
import { SetupNetworkGuard } from '../egress/setup-network-guard.js';
import type { ForegroundActivity } from './foreground-activity.js';
import { EgressDenialLog } from './egress-denial-log.js';
import { LiveChanges } from './live-changes.js';
import { capLog } from './log-cap.js';

/**
 * AttemptRunner: one attempt, DESIGN §2 step by step, with the cache of §3.
 *
 *   creating     a per-attempt bridge network (the public internet only: setup-network-guard.ts);
 *                the sandbox from the live cache entry whose key matches (then fetch + check out
 *                the task's ref), else from the base image (clone of the default branch);
 *   setup        (no cache entry) the setup script with variables and secrets in its process
 *                environment only; committed as the cache entry, published atomically; one
 *                build per environment and key at a time, other attempts wait and reuse it;
 *   maintenance  (from a cache entry) the maintenance script, same rules;
 *   services     started in the background, waited for by their readiness checks;
 *   lockdown     the sandbox leaves the setup network (NetworkPolicyEnforcer);
 *   agent        the AgentPhase, its commands with the variables and replayed exports, no secrets;
 *   results      the diff against the checked-out commit, the commands, the final message, and
 *                the final state committed as a snapshot image (removed after snapshotTtlMs).
 *
 * Every sandbox, network and image is labelled with the task and attempt; the sandbox and the
 * network are removed when the attempt ends, whatever way it ends. Cancellation (the signal)
 * stops the running command and cleans up.
 *
 * Threat model: secrets reach the sandbox only as the environment of the setup/maintenance
 * processes (never the container's configuration), every text that leaves a phase passes the
 * SecretMasker, the sandbox is restarted after each script (no process it started runs on) and
 * the files it wrote a secret into are removed or refused before services and lockdown
 * (leftover-processes.ts, secret-scan.ts), and replayed exports never carry a secret value.
 * Repository locations and refs are handled by checkout.ts (argv only); the repository's
 * credentials enter a sandbox only for the first clone from the base image, never after a script
 * ran in it or in its image (later fetches run on the host and enter as a bundle).
 */

export const WORKSPACE_DIR = '/workspace';
/** The checked-out commit and the branch HEAD is on (`HEAD` when detached). */
const HEAD_PROBE = ['git', 'rev-parse', 'HEAD', '--symbolic-full-name', 'HEAD'];
/** The longest a snapshot commit after the result waits for the other attempts' results. */
const BACKGROUND_WAIT_MS = 10_000;
/** How long a follow-up looks for a snapshot another orchestrator may still be committing. */
const SNAPSHOT_WAIT_MS = 5_000;
export { MAX_LOG_BYTES } from './log-cap.js';

export interface AttemptRunnerOptions {
  runtime: SandboxRuntime;
  cache: CacheEntries;
  /** When the environment's cache was last reset by hand (kept in the store, `getCacheResetAt`). */
  cacheResetAt?: (environmentId: string) => Promise<string | undefined>;
  enforcer: NetworkPolicyEnforcer;
  /** Maps an environment's image name (`universal`, `minimal`, or a reference) to a local image. */
  resolveImage: (name: string) => string;
  /**
   * The image with the environment's pinned language versions installed (built once, reused);
   * the base itself when there are none. Without it, pinned versions are not installed.
   */
  prepareImage?: (
    name: string,
    baseRef: string,
    versions: EnvironmentSpec['versions'],
    options: { signal: AbortSignal; onProgress: (line: string) => void },
  ) => Promise<string>;
  cacheTtlMs: number;
  snapshotTtlMs: number;
  allowLocalRepositories: boolean;
  /**
   * ssh repositories without pinned host keys: the folder of the keys trusted on first use, one
   * file per environment (in the data directory). Without it, a temporary file per fetch.
   */
  knownHostsDir?: string | undefined;
  /**
   * The firewall of the setup network (the public internet only; `BERTH_SETUP_ALLOW`). Default: a
   * guard with no allowances.
   */
  setupNetwork?: SetupNetworkGuard;
  /** Sandboxes started ahead of time for cached starts that need no network. */
  warmPool?: WarmPool;
  /** Attempts still working towards their result; deferred snapshot commits wait for a lull. */
  foreground?: ForegroundActivity;
  /** Shared by every runner of this orchestrator, so concurrent attempts build once. */
  buildLock?: CacheBuildLock;
  /**
   * This orchestrator's name in the store's build claims (its lease owner): with the claims,
   * orchestrators sharing one store build a missing cache entry once between them.
   */
  buildOwner?: string;
  /** The store-side build claims (lease length, polling); made from `cache` when not given. */
  buildLease?: CacheBuildLease;
  /** Enforces `resources.diskMb` (one per orchestrator); made from `runtime` when not given. */
  diskWatchdog?: DiskWatchdog;
  /** No attempt starts and no cache entry is built with less free disk than this (default 2048; 0: off). */
  minFreeDiskMb?: number;
  now?: () => Date;
}

export interface AttemptRun {
  attemptId: string;
  taskId: string;
  /** `templates`: name → digest of each template the spec extends (part of the cache key). */
  environment: {
    id: string;
    spec: EnvironmentSpec;
    templates?: Record<string, string>;
    /** `repository.config`: the file's path and content digest (part of the cache key). */
    repositoryFile?: { path: string; digest: string } | undefined;
    /**
     * A task on another branch whose repository file differs (repository-config-now.ts): the
     * default branch's spec, which the cache key and setup come from; `spec` (that branch's
     * fields) runs maintenance and the agent phase.
     */
    cacheSpec?: EnvironmentSpec | undefined;
  };
  /** Secret values by name, opened by the caller; they reach setup and maintenance only. */
  secrets: Readonly<Record<string, string>>;
  ref: TaskRef;
  /** Replaces the environment's repository (`berth run --repo`). */
  repository?: string | undefined;
  credentials?: GitCredentials | undefined;
  prompt: string;
  agent: AgentPhase;
  /** A follow-up turn: start from this snapshot (no checkout, setup, maintenance); diff against baseCommit. */
  resume?: (FollowUpStart & { baseCommit: string }) | undefined;
  emit: (event: AttemptEventBody) => void;
  signal: AbortSignal;
  /**
   * Return as soon as the result is known: the snapshot commit (when no verification runs on
   * it) and the clean-up continue in `outcome.settled` (the scheduler records the result first).
   */
  returnEarly?: boolean | undefined;
  /** Receives what the sandbox used (the engine's figures), read just before its removal. */
  onSandboxStats?: ((stats: SandboxStats) => void) | undefined;
}

export interface AttemptOutcome {
  phase: 'succeeded' | 'failed' | 'cancelled';
  cacheHit: boolean | null;
  result: AttemptResult | null;
  error: AttemptError | null;
  /**
   * With `returnEarly`: what still runs after the result (the snapshot commit when no
   * verification needed it first, the sandbox's removal). Never rejects.
   */
  settled?: Promise<void>;
}

interface Started {
  ctx: SandboxContext;
  exports: Record<string, string>;
  commit: string;
  /** A follow-up turn: the tree its working state started from. */
  turnStart?: string;
  /** The cache entry's image it started from (absent for a follow-up, which starts from a snapshot). */
  image?: string;
}

export class AttemptRunner {
  private readonly buildLock: CacheBuildLock;
  /** Look-ups in flight, shared by the attempts that ask the same at the same moment. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** Snapshots being committed after their attempt's result, by image: follow-ups wait for them. */
  private readonly snapshotsInFlight = new Map<string, Promise<void>>();
  private readonly buildLease: CacheBuildLease;
  private readonly buildOwner: string;
  private readonly diskWatchdog: DiskWatchdog;
  private readonly freeDisk: FreeDiskFloor;
  private readonly now: () => Date;
  private readonly setupGuard: SetupNetworkGuard;

  constructor(private readonly options: AttemptRunnerOptions) {
    this.setupGuard = options.setupNetwork ?? new SetupNetworkGuard();
    this.buildLock = options.buildLock ?? new CacheBuildLock();
    this.buildLease = options.buildLease ?? new CacheBuildLease({ store: options.cache });
    this.buildOwner = options.buildOwner ?? `runner-${newId('attempt').slice(4, 16)}`;
    const { runtime } = options;
    this.diskWatchdog =
      options.diskWatchdog ?? new DiskWatchdog({ usage: runtime.sandboxDiskUsage?.bind(runtime) });
    this.freeDisk = new FreeDiskFloor(
      runtime.storage?.bind(runtime),
      options.minFreeDiskMb ?? 2048,
    );
    this.now = options.now ?? (() => new Date());
  }

  /** Runs the attempt to its end; never throws (a failure is the outcome). */
  /**
   * Runs the attempt to its end; never throws (a failure is the outcome). With
   * `run.returnEarly`, it returns as soon as the result is known and the snapshot commit and
   * clean-up go on in `outcome.settled` (follow-ups of this runner wait for the snapshot).
   */
  async run(run: AttemptRun): Promise<AttemptOutcome> {
    const tail: { settled?: Promise<void> } = {};
    const endForeground = this.options.foreground?.begin();
    let outcome: AttemptOutcome;
    try {
      outcome = await this.runAttempt(run, tail);
    } finally {
      endForeground?.();
    }
    if (tail.settled === undefined) return outcome;
    if (run.returnEarly === true) return { ...outcome, settled: tail.settled };
    await tail.settled;
    return outcome;
  }

  private async runAttempt(
    run: AttemptRun,
    tail: { settled?: Promise<void> },
  ): Promise<AttemptOutcome> {
    const { runtime } = this.options;
    const spec = run.environment.spec;
    const masker = new SecretMasker(Object.values(run.secrets));
    // The log keeps at most MAX_LOG_BYTES of output per attempt; beyond, a warning says so once.
    const keep = capLog((event) => run.emit(event));
    // The proxy's denials, for the agent's tool results and the attempt's deniedHosts.
    const denials = new EgressDenialLog();
    const emit = (event: AttemptEventBody) => {
      denials.observe(event);
      keep(event);
    };
    const wallClock = AbortSignal.timeout(spec.resources.timeoutMs);
    // The agent stops before the time limit, so the attempt still collects its results.
    const deadline = agentDeadline(Date.now(), spec.resources.timeoutMs);
    // The disk watchdog stops an attempt that writes past `resources.diskMb` through this signal.
    const diskLimit = new AbortController();
    const signal = AbortSignal.any([run.signal, wallClock, diskLimit.signal]);
    let unwatchDisk: () => void = () => undefined;
    const labels = {
      [BERTH_LABELS.task]: run.taskId,
      [BERTH_LABELS.attempt]: run.attemptId,
    };
    const networkName = `berth-${run.attemptId.replace(/_/g, '-')}`;
    let sandboxId: string | undefined;
    let networkMade = false;
    /** Warm sandboxes for this cache entry are topped up once the attempt has ended. */
    let warmAfter: WarmSpec | undefined;
    /** The snapshot, when it is committed after the result (see `run`). */
    let deferredSnapshot: { image: string; commit: () => Promise<unknown> } | undefined;
    let phase: AttemptPhase = 'creating';
    let cacheHit: boolean | null = null;
    const enterPhase = (next: AttemptPhase) => {
      phase = next;
      emit({ type: 'phase', phase: next });
    };
    const onSandbox = (id: string) => {
      sandboxId = id;
      unwatchDisk();
      const limitMb = spec.resources.diskMb;
      unwatchDisk = this.diskWatchdog.watch(id, limitMb * 1024 * 1024, (written) => {
        // Rounded up: past the limit by any amount never reads as "wrote 100 MB, limit 100 MB".
        const writtenMb = Math.ceil(written / 1024 / 1024);
        diskLimit.abort(
          new BerthError(
            'disk_full',
            `disk limit exceeded: wrote ${writtenMb} MB, limit ${limitMb} MB (resources.diskMb)`,
            { writtenMb, limitMb },
          ),
        );
      });
      // Named in the log, so a user (or `berth env test -it`) can find the container.
      emit({ type: 'log', stream: 'system', text: `sandbox ${id.slice(0, 12)}\n` });
    };
    // Cancellation reaches the running command through the signal; should that not end it at
    // once, the sandbox itself is removed a second later, so a cancel never waits on a command.
    let killTimer: NodeJS.Timeout | undefined;
    let killing: Promise<void> | undefined;
    const onAbort = () => {
      killTimer = setTimeout(() => {
        if (sandboxId !== undefined) killing = runtime.remove(sandboxId).catch(() => undefined);
      }, 1_000);
    };
    signal.addEventListener('abort', onAbort, { once: true });

    try {
      enterPhase('creating');
      await this.freeDisk.check('start an attempt');
      const repository = run.repository ?? spec.repository.url;
      const plainRef = this.options.resolveImage(spec.image);
      const baseRef =
        this.options.prepareImage && Object.keys(spec.versions).length > 0
          ? await this.options.prepareImage(spec.image, plainRef, spec.versions, {
              signal,
              onProgress: (line) => emit({ type: 'log', stream: 'system', text: `${line}\n` }),
            })
          : plainRef;
      const base = await this.shared(`image:${baseRef}`, () => runtime.inspectImage(baseRef)).catch(
        (error: unknown) => {
          const e = toBerthError(error);
          if (e.code === 'not_found' || e.code === 'image_missing') {
            throw imageMissing(baseRef);
          }
          throw e;
        },
      );
      const keySpec = run.environment.cacheSpec ?? spec;
      const parts = cacheKeyParts({
        environmentId: run.environment.id,
        baseImageDigest: base.id,
        repository: { url: repository, defaultBranch: spec.repository.defaultBranch },
        versions: keySpec.versions,
        setup: keySpec.setup,
        maintenance: keySpec.maintenance,
        env: keySpec.env,
        // A secret used only as a proxy credential is not part of the key (changing it rebuilds nothing).
        secrets: scriptSecrets(keySpec, run.secrets),
        templates: run.environment.templates,
        repositoryFile: run.environment.repositoryFile,
      });
      const key = cacheKey(parts);
      // A local repository is bundled on the host when a checkout needs it (started before the
      // sandbox, so the two overlap); its default branch's commit is read at once (cheap), so a
      // cached start already at that commit skips the bundle, the fetch and the checkout.
      const location = parseRepositoryLocation(repository, this.options.allowLocalRepositories);
      let bundling: Promise<Buffer> | undefined;
      const bundle =
        location.kind !== 'remote'
          ? () => {
              if (bundling === undefined) {
                bundling =
                  location.kind === 'ssh'
                    ? bundleSshRepository(location.location, {
                        credentials: run.credentials,
                        knownHostsFile: this.knownHostsFile(run),
                        signal,
                        // The host connects only where setup may (BERTH_SETUP_ALLOW).
                        addressPolicy: { allow: this.setupGuard.allow },
                      })
                    : bundleLocalRepository(location.location, signal);
                bundling.catch(() => undefined);
              }
              return bundling;
            }
          : undefined;
      const localHead =
        location.kind === 'local' && run.ref.branch === undefined && run.ref.sha === undefined
          ? this.shared(`head:${location.location}\0${spec.repository.defaultBranch}`, () =>
              localBranchHead(location.location, spec.repository.defaultBranch),
            ).catch(() => undefined)
          : undefined;
      // The setup network (the public internet) is made when a step needs it: setup, maintenance,
      // or a fetch from a remote repository. A cached start from a local repository goes without.
      // Its firewall is in place before any sandbox joins it (setup-network-guard.ts).
      const ensureNetwork = async (): Promise<string> => {
        if (!networkMade) {
          await runtime.createNetwork({
            name: networkName,
            internal: false,
            labels: { ...labels, [BERTH_LABELS.kind]: 'network' },
            bridgeName: this.setupGuard.bridgeFor(run.attemptId),
          });
          networkMade = true;
          const guarded = await this.setupGuard.protect(run.attemptId, signal);
          emit({ type: 'log', stream: 'system', text: `${guarded.description}\n` });
          if (guarded.ipv6Skipped)
            emit({
              type: 'warning',
              message:
                'ip6tables is not usable on this host: the IPv6 rules of the setup network were skipped (the network has no IPv6)',
            });
        }
        return networkName;
      };
      const common: CommonRun = {
        run,
        masker,
        emit,
        signal,
        labels,
        repository,
        bundle,
        localHead,
        onSandbox,
        onWarmable: (warm) => (warmAfter = warm),
        network: async (needed) =>
          needed || location.kind === 'remote' ? await ensureNetwork() : undefined,
      };

      // A follow-up turn starts from its parent's snapshot; the cache loop below is then skipped.
      let started: Started | undefined = run.resume
        ? await this.resumeSnapshot(common, run.resume)
        : undefined;
      for (let round = 0; started === undefined; round++) {
        const live = await this.options.cache.findLiveCacheEntry(
          run.environment.id,
          key,
          this.now().toISOString(),
        );
        if (live !== undefined) {
          cacheHit = true;
          emit({
            type: 'cache',
            result: 'hit',
            reason: `cache entry from ${live.createdAt}`,
            key,
            image: live.image,
          });
          started = await this.resumeFromCache(common, live, enterPhase);
          break;
        }
        const lockKey = `${run.environment.id}:${key}`;
        if (round === 0) {
          const reason = await this.missReason(run.environment.id, key, parts);
          emit({ type: 'cache', result: 'miss', reason, key });
        }
        let own: Started | undefined;
        let building = false;
        let builtElsewhere = false;
        try {
          // In this orchestrator its attempts wait for each other in memory (the lock); across
          // orchestrators on one store, the build is claimed in the store (the lease).
          const { value: entry, waited } = await this.buildLock.once(lockKey, signal, async () => {
            const turn = await this.buildLease.acquire({
              environmentId: run.environment.id,
              key,
              owner: `${this.buildOwner}/${run.attemptId}`,
              signal,
              onWait: (claim) =>
                emit({
                  type: 'log',
                  stream: 'system',
                  text: `waiting for the cache entry that ${claim.owner} is building (since ${claim.claimedAt})\n`,
                }),
              onRenewFailed: (reason) =>
                emit({
                  type: 'warning',
                  message: `could not renew the claim on the cache build: ${reason}`,
                }),
            });
            if ('entry' in turn) {
              builtElsewhere = true;
              return turn.entry;
            }
            if (turn.held.tookOverFrom !== undefined) {
              emit({
                type: 'log',
                stream: 'system',
                text: `the build of the cache entry by ${turn.held.tookOverFrom.owner} stopped (its lease ran out at ${turn.held.tookOverFrom.expiresAt}); building it here\n`,
              });
              await this.stopEarlierBuild(turn.held.tookOverFrom.owner, run.attemptId, emit);
            }
            building = true;
            try {
              const built = await this.buildCache(
                common,
                { key, parts, baseImage: baseRef },
                enterPhase,
              );
              own = built.started;
              return built.entry;
            } catch (error) {
              // Waiters get the reason itself (their own sandbox would pass the same limit).
              if (diskLimit.signal.aborted) throw diskLimit.signal.reason;
              throw error;
            } finally {
              await turn.held.release().catch((error: unknown) =>
                emit({
                  type: 'warning',
                  message: `could not release the claim on the cache build: ${toBerthError(error).message}`,
                }),
              );
            }
          });
          if (!waited && own !== undefined) {
            cacheHit = false;
            started = own;
          } else {
            emit({
              type: 'cache',
              result: 'waited',
              reason:
                builtElsewhere && !waited
                  ? 'another orchestrator built the cache entry'
                  : 'another attempt built the cache entry',
              key,
              image: entry.image,
            });
            cacheHit = true;
            started = await this.resumeFromCache(common, entry, enterPhase);
          }
        } catch (error) {
          // Another attempt's build failed for a reason of its own (it was cancelled, its sandbox
          // died): try again, this attempt may build it. A failing script or checkout fails all.
          const reason = toBerthError(error).details.reason;
          const shared =
            reason === 'setup' || reason === 'checkout' || toBerthError(error).code === 'disk_full';
          if (!building && !signal.aborted && !shared && round < 3) continue;
          throw error;
        }
      }

      const { ctx } = started;
      // Nothing from here on sees the secrets; the masker stays on for safety.
      const commandEnv = { ...spec.env, ...started.exports };
      if (spec.services.length > 0) {
        enterPhase('services');
        await startServices(ctx, spec.services, commandEnv);
      }

      enterPhase('lockdown');
      // What the lockdown reads the image's registries from (when its policy needs them): never a
      // sandbox an agent ran in, so a follow-up names its environment's current cache entry (or
      // the base image).
      const startImage = async () =>
        started.image ??
        (
          await this.options.cache.findLiveCacheEntry(
            run.environment.id,
            key,
            this.now().toISOString(),
          )
        )?.image ??
        baseRef;
      // `internet.credentials`: the values go to the proxy only, never into the sandbox.
      const credentials = injectedCredentials(spec.internet, run.secrets);
      for (const skipped of credentials.skipped)
        emit({ type: 'warning', message: `credential not set by the proxy for ${skipped}` });
      const lockdown = await this.options.enforcer.lockdown({
        runtime,
        sandboxId: ctx.sandboxId,
        setupNetwork: networkMade ? networkName : null,
        policy: spec.internet,
        attemptId: run.attemptId,
        environmentId: run.environment.id,
        startImage,
        credentials: credentials.credentials,
        emit,
        signal,
      });

      enterPhase('agent');
      const commands: CommandRecord[] = [];
      const agentEnv = { ...commandEnv, ...lockdown.env };
      // The files changed so far, while the agent runs (the page of a running task shows them).
      const live = new LiveChanges({
        runtime,
        sandboxId: ctx.sandboxId,
        workdir: ctx.workdir,
        baseCommit: started.commit,
        signal,
        mask: (text) => masker.mask(text),
        emit,
        // An agent phase that ends by an error stops it too.
        active: () => phase === 'agent',
      });
      live.start();
      const outcome = await run.agent.run({
        attemptId: run.attemptId,
        prompt: run.prompt,
        workdir: ctx.workdir,
        signal,
        deadline,
        // A tool the model agent ran itself may have changed files: list them soon.
        emit: (event) => {
          emit(event);
          if ((event as { type: string }).type === 'tool_result') live.refresh();
        },
        runtime,
        sandboxId: ctx.sandboxId,
        env: agentEnv,
        mask: (text) => masker.mask(text),
        commandOutput: () => new PhaseOutput(masker, emit),
        egressDenials: () => denials.watch(),
        exec: async (command, options = {}) => {
          emit({ type: 'command_start', command: masker.mask(command), phase: 'agent' });
          const output = new PhaseOutput(masker, emit);
          const result = await runtime.exec(ctx.sandboxId, {
            script: command,
            login: true,
            env: agentEnv,
            workdir: ctx.workdir,
            timeoutMs: options.timeoutMs ?? spec.resources.timeoutMs,
            signal,
            onOutput: output.onOutput,
            maxOutputBytes: 256 * 1024,
          });
          output.end();
          if (signal.aborted) throw signal.reason;
          const record: CommandRecord = {
            command: masker.mask(command),
            exitCode: result.exitCode,
            output: masker.mask(result.output),
            phase: 'agent',
            durationMs: result.durationMs,
            timedOut: result.timedOut,
            ...(result.outOfMemory === true ? { outOfMemory: true } : {}),
          };
          commands.push(record);
          emit({ type: 'command', ...record, phase: 'agent' });
          live.refresh();
          return record;
        },
      });
      await live.stop();

      enterPhase('results');
      const changes = await collectChanges(ctx, started.commit);
      const ownDiff =
        started.turnStart !== undefined ? await turnDiff(ctx, started.turnStart) : undefined;
      // Without a verification to run after it, the final state is committed once the result is
      // out (the user does not wait on the engine's commit); follow-ups wait for it.
      let snapshot: string;
      if (spec.verify === undefined && run.returnEarly === true) {
        const sandbox = ctx.sandboxId;
        snapshot = this.snapshotImageOf(run);
        deferredSnapshot = {
          image: snapshot,
          commit: () => this.snapshot(sandbox, run, labels),
        };
      } else snapshot = await this.snapshot(ctx.sandboxId, run, labels);
      const verification =
        spec.verify !== undefined
          ? await runVerification(ctx, spec.verify, agentEnv, spec.resources.timeoutMs)
          : undefined;
      const result: AttemptResult = {
        baseCommit: started.commit,
        diff: changes.diff,
        files: changes.files,
        secretFiles: changes.secretFiles,
        message: masker.mask(outcome.message),
        // The model agent runs its tools itself and reports the commands it ran.
        commands: [...commands, ...(outcome.commands ?? [])],
        snapshotImage: snapshot,
        ...(outcome.usage ? { usage: outcome.usage } : {}),
        ...(verification ? { verification } : {}),
        ...(ownDiff !== undefined ? { turnDiff: ownDiff } : {}),
      };
      // Suggestions for a person to review; nothing applies them.
      const denied = denials.deniedHosts(spec.internet);
      if (denied.length > 0) result.deniedHosts = denied;
      if (!outcome.succeeded) {
        const error = {
          code: 'task_failed',
          message: result.message,
          details: { reason: 'agent' },
        };
        emit({ type: 'error', ...error });
        enterPhase('failed');
        return { phase: 'failed', cacheHit, result, error };
      }
      enterPhase('succeeded');
      return { phase: 'succeeded', cacheHit, result, error: null };
    } catch (thrown) {
      const error = this.describeError(
        thrown,
        run.signal,
        diskLimit.signal,
        wallClock,
        spec.resources.timeoutMs,
        phase,
        masker,
      );
      emit({ type: 'error', code: error.code, message: error.message, details: error.details });
      const end = error.code === 'cancelled' ? 'cancelled' : 'failed';
      enterPhase(end);
      return { phase: end, cacheHit, result: null, error };
    } finally {
      clearTimeout(killTimer);
      unwatchDisk();
      signal.removeEventListener('abort', onAbort);
      await killing;
      const snapshotLater = deferredSnapshot;
      const finishUp = async () => {
        if (snapshotLater !== undefined) {
          // After the result: wait (bounded) until this orchestrator's other attempts have theirs.
          await this.options.foreground?.quiet(BACKGROUND_WAIT_MS);
          await snapshotLater.commit().catch((error: unknown) =>
            emit({
              type: 'warning',
              message: `the final state could not be kept for follow-ups: ${toBerthError(error).message}`,
            }),
          );
        }
        await this.cleanup(run, sandboxId, networkMade ? networkName : undefined);
        if (warmAfter !== undefined) this.options.warmPool?.fill(warmAfter);
      };
      if (snapshotLater === undefined) await finishUp();
      else {
        const settled = finishUp().catch(() => undefined);
        this.snapshotsInFlight.set(snapshotLater.image, settled);
        void settled.then(() => this.snapshotsInFlight.delete(snapshotLater.image));
        tail.settled = settled;
      }
    }
  }

  /**
   * One engine or host look-up for all the attempts that start together (the N attempts of a
   * task ask for the same image and branch at once); the answer is not kept once it arrived.
   */
  private shared<T>(key: string, lookUp: () => Promise<T>): Promise<T> {
    const pending = this.inFlight.get(key) as Promise<T> | undefined;
    if (pending !== undefined) return pending;
    const started = lookUp().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }

  private describeError(
    thrown: unknown,
    cancel: AbortSignal,
    diskLimit: AbortSignal,
    wallClock: AbortSignal,
    timeoutMs: number,
    phase: AttemptPhase,
    masker: SecretMasker,
  ): AttemptError {
    if (cancel.aborted) {
      return {
        code: 'cancelled',
        message: `the attempt was cancelled during ${phase}`,
        details: { phase },
      };
    }
    if (diskLimit.aborted) {
      const reason = toBerthError(diskLimit.reason);
      return {
        code: reason.code,
        message: reason.message,
        details: { phase, ...reason.details },
      };
    }
    if (wallClock.aborted) {
      return {
        code: 'timeout',
        message: `the attempt ran out of its time limit (${Math.round(timeoutMs / 1000)} s) during ${phase}`,
        details: { phase },
      };
    }
    const error = toBerthError(thrown);
    return {
      code: error.code,
      message: masker.mask(error.message),
      details: { phase, ...error.details },
    };
  }

  private async missReason(
    environmentId: string,
    key: string,
    parts: CacheKeyParts,
  ): Promise<string> {
    const latest = await this.options.cache.latestCacheEntry(environmentId);
    if (latest === undefined) {
      const resetAt = await this.options.cacheResetAt?.(environmentId);
      return resetAt !== undefined
        ? `the cache was reset by hand at ${resetAt} (berth env cache reset)`
        : 'no cache entry yet';
    }
    if (latest.key === key) {
      return isCacheEntryLive(latest, this.now())
        ? 'the cache entry was reset'
        : `the cache entry expired at ${latest.expiresAt}`;
    }
    const changes = explainChange(latest.parts, parts);
    return changes.length > 0
      ? `cache rebuilt because: ${changes.join(', ')}`
      : 'the cache key changed';
  }

  private resourcesOf(spec: EnvironmentSpec): SandboxResources {
    return {
      cpus: spec.resources.cpus,
      memoryMb: spec.resources.memoryMb,
      pids: spec.resources.pids,
      diskMb: spec.resources.diskMb,
    };
  }

  /** A sandbox the warm pool started ahead of time, checked to be alive; undefined if none. */
  /**
   * A sandbox the warm pool started ahead of time, checked to be alive; undefined if none. The
   * check is `probe` when given (a command the caller needs anyway; its result is returned), else
   * `true`.
   */
  private async takeWarm(
    common: CommonRun,
    spec: WarmSpec,
    probe?: string[],
  ): Promise<{ ctx: SandboxContext; probed?: ExecResult } | undefined> {
    const { runtime, warmPool } = this.options;
    const id = warmPool?.take(spec);
    if (id === undefined) return undefined;
    common.onSandbox(id);
    let probed: ExecResult;
    try {
      probed = await runtime.exec(id, {
        argv: probe ?? ['true'],
        workdir: WORKSPACE_DIR,
        timeoutMs: 10_000,
        signal: common.signal,
      });
    } catch {
      await runtime.remove(id).catch(() => undefined);
      return undefined;
    }
    common.emit({ type: 'log', stream: 'system', text: 'using a sandbox started ahead of time\n' });
    return {
      ctx: {
        runtime,
        sandboxId: id,
        workdir: WORKSPACE_DIR,
        emit: common.emit,
        masker: common.masker,
        signal: common.signal,
      },
      ...(probe !== undefined ? { probed } : {}),
    };
  }

  private async newSandbox(
    common: CommonRun,
    image: string,
    network: string | undefined,
  ): Promise<SandboxContext> {
    const { runtime } = this.options;
    const spec = common.run.environment.spec;
    const sandbox = await runtime.create({
      image,
      labels: { ...common.labels, [BERTH_LABELS.kind]: 'sandbox' },
      resources: this.resourcesOf(spec),
      ...(network !== undefined ? { network } : {}),
      hostname: 'berth',
      workdir: WORKSPACE_DIR,
      signal: common.signal,
    });
    common.onSandbox(sandbox.id);
    await runtime.start(sandbox.id, common.signal);
    return {
      runtime,
      sandboxId: sandbox.id,
      workdir: WORKSPACE_DIR,
      emit: common.emit,
      masker: common.masker,
      signal: common.signal,
    };
  }

  private checkoutContext(
    common: CommonRun,
    ctx: SandboxContext,
    output: PhaseOutput,
  ): CheckoutContext {
    return {
      runtime: ctx.runtime,
      sandboxId: ctx.sandboxId,
      workdir: ctx.workdir,
      repository: common.repository,
      defaultBranch: common.run.environment.spec.repository.defaultBranch,
      allowLocalRepositories: this.options.allowLocalRepositories,
      credentials: common.run.credentials,
      bundle: common.bundle?.(),
      knownHostsFile: this.knownHostsFile(common.run),
      addressPolicy: { allow: this.setupGuard.allow },
      signal: common.signal,
      onOutput: output.onOutput,
    };
  }

  private knownHostsFile(run: AttemptRun): string | undefined {
    const dir = this.options.knownHostsDir;
    return dir === undefined ? undefined : join(dir, run.environment.id);
  }

  /** Cold path: base image, clone, setup, commit and publish the cache entry. */
  private async buildCache(
    common: CommonRun,
    want: { key: string; parts: CacheKeyParts; baseImage: string },
    enterPhase: (phase: AttemptPhase) => void,
  ): Promise<{ entry: CacheEntry; started: Started }> {
    const { run } = common;
    // Setup runs the default branch's fields when the task's branch has its own file.
    const spec = run.environment.cacheSpec ?? run.environment.spec;
    await this.freeDisk.check('build a cache entry');
    void common.bundle?.(); // made on the host while the sandbox starts
    const ctx = await this.newSandbox(common, want.baseImage, await common.network(true));
    const output = new PhaseOutput(common.masker, common.emit);
    const checkout = this.checkoutContext(common, ctx, output);
    const cloned = await cloneRepository(checkout);
    output.end();

    let exports: Record<string, string> = {};
    if (spec.setup !== undefined) {
      enterPhase('setup');
      const setup = await runLifecycleScript(ctx, {
        phase: 'setup',
        spec: spec.setup,
        // Behind a corporate proxy, its address (no credentials); the environment's own win.
        env: { ...this.setupGuard.scriptEnv(), ...spec.env },
        secrets: scriptSecrets(spec, run.secrets),
        exports: {},
      });
      exports = setup.exports;
    }

    // The environment's CA into the image once, so attempts from it skip the trust store work.
    const prepared = await this.options.enforcer
      .prepareCacheImage?.({
        runtime: this.options.runtime,
        sandboxId: ctx.sandboxId,
        environmentId: run.environment.id,
        policy: spec.internet,
        signal: common.signal,
      })
      .catch((error: unknown) => {
        common.emit({
          type: 'warning',
          message: `could not put the egress CA into the cache image (each lockdown installs it): ${toBerthError(error).message}`,
        });
        return undefined;
      });

    // Publish: commit first, record after; a crash in between leaves an unrecorded image (GC'd).
    const createdAt = this.now();
    const expiresAt = new Date(createdAt.getTime() + this.options.cacheTtlMs);
    const tag = `${run.environment.id.replace(/_/g, '-')}-${want.key.slice(0, 16)}`;
    const image = await this.options.runtime.commit(ctx.sandboxId, {
      repository: 'berth-cache',
      tag,
      labels: {
        ...prepared?.labels,
        [BERTH_LABELS.kind]: 'cache',
        [BERTH_LABELS.cache]: want.key,
        'berth.environment': run.environment.id,
        'berth.expires-at': expiresAt.toISOString(),
        [BERTH_LABELS.task]: run.taskId,
        [BERTH_LABELS.attempt]: run.attemptId,
      },
    });
    const entry: CacheEntry = {
      id: newId('cacheEntry'),
      environmentId: run.environment.id,
      key: want.key,
      parts: want.parts,
      image: `berth-cache:${tag}`,
      imageId: image.id,
      sizeBytes: image.sizeBytes,
      commit: cloned.commit,
      exportNames: Object.keys(exports).sort(),
      createdAt: createdAt.toISOString(),
      expiresAt: expiresAt.toISOString(),
    };
    try {
      await this.options.cache.publishCacheEntry(entry);
    } catch (error) {
      await this.options.runtime.removeImage(image.id).catch(() => undefined);
      throw error;
    }
    common.emit({
      type: 'cache',
      result: 'built',
      reason: 'setup finished; cache entry committed',
      key: want.key,
      image: entry.image,
    });

    let commit = cloned.commit;
    if (run.ref.branch !== undefined || run.ref.sha !== undefined) {
      const on = await checkoutRef(checkout, run.ref);
      output.end();
      commit = on.commit;
    }
    return { entry, started: { ctx, exports, commit, image: entry.image } };
  }

  /** Follow-up path: the parent attempt's snapshot, as it ended (see follow-up-turn.ts). */
  private async resumeSnapshot(
    common: CommonRun,
    resume: FollowUpStart & { baseCommit: string },
  ): Promise<Started> {
    await this.snapshotReady(resume.image, common);
    const ctx = await startFromSnapshot({
      runtime: this.options.runtime,
      start: resume,
      labels: common.labels,
      resources: this.resourcesOf(common.run.environment.spec),
      workdir: WORKSPACE_DIR,
      masker: common.masker,
      emit: common.emit,
      signal: common.signal,
      onSandbox: common.onSandbox,
      snapshotTtlMs: this.options.snapshotTtlMs,
    });
    return { ctx, exports: {}, commit: resume.baseCommit, turnStart: await recordTurnStart(ctx) };
  }

  /**
   * A snapshot committed after its attempt's result: in this runner, waited for; made by another
   * orchestrator (one store), looked for a few seconds before the follow-up says it is gone.
   */
  private async snapshotReady(image: string, common: CommonRun): Promise<void> {
    const inFlight = this.snapshotsInFlight.get(image);
    if (inFlight !== undefined) {
      common.emit({
        type: 'log',
        stream: 'system',
        text: `waiting for the snapshot ${image} to be committed\n`,
      });
      await inFlight;
      return;
    }
    for (let i = 0; i < SNAPSHOT_WAIT_MS / 250; i++) {
      const found = await this.options.runtime.inspectImage(image).then(
        () => true,
        () => false,
      );
      if (found) return;
      common.signal.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Warm path: the cache entry's image, fetch and check out, maintenance. */
  private async resumeFromCache(
    common: CommonRun,
    entry: CacheEntry,
    enterPhase: (phase: AttemptPhase) => void,
  ): Promise<Started> {
    const { run } = common;
    const spec = run.environment.spec;
    const network = await common.network(spec.maintenance !== undefined);
    const atEntryCommit =
      common.localHead !== undefined && (await common.localHead) === entry.commit;
    if (!atEntryCommit) void common.bundle?.();
    const warmSpec: WarmSpec = {
      image: entry.image,
      resources: this.resourcesOf(spec),
      workdir: WORKSPACE_DIR,
    };
    // A warm sandbox's liveness check is the HEAD check when that is needed (one exec, not two).
    const warm =
      network === undefined
        ? await this.takeWarm(common, warmSpec, atEntryCommit ? HEAD_PROBE : undefined)
        : undefined;
    const ctx = warm?.ctx ?? (await this.newSandbox(common, entry.image, network));
    // The next attempts from this entry find sandboxes already started (made after this one ends).
    if (network === undefined) common.onWarmable(warmSpec);
    const output = new PhaseOutput(common.masker, common.emit);
    const onRef =
      (atEntryCommit ? await this.onEntryCommit(common, ctx, entry, warm?.probed) : undefined) ??
      (await checkoutRef(this.checkoutContext(common, ctx, output), run.ref));
    output.end();
    // Login shells get the exports from the profile file in the image; they are read here only
    // when a maintenance script will add to them.
    let exports: Record<string, string> =
      spec.maintenance !== undefined ? await readExports(ctx) : {};
    if (entry.exportNames.length > 0) {
      common.emit({
        type: 'log',
        stream: 'system',
        text: `replaying variables exported by setup: ${entry.exportNames.join(', ')}\n`,
      });
    }
    if (spec.maintenance !== undefined) {
      enterPhase('maintenance');
      const maintenance = await runLifecycleScript(ctx, {
        phase: 'maintenance',
        spec: spec.maintenance,
        env: { ...this.setupGuard.scriptEnv(), ...spec.env },
        secrets: scriptSecrets(spec, run.secrets),
        exports,
      });
      exports = maintenance.exports;
    }
    return { ctx, exports, commit: onRef.commit, image: entry.image };
  }

  /**
   * The task asks for the default branch and the local repository's branch is still at the
   * commit the cache entry was cloned at: the entry's checkout is the task's, nothing to fetch.
   * Checked in the sandbox (HEAD on that branch, at that commit); undefined sends the caller to
   * the full checkout.
   */
  private async onEntryCommit(
    common: CommonRun,
    ctx: SandboxContext,
    entry: CacheEntry,
    probed: ExecResult | undefined,
  ): Promise<{ commit: string; branch: string } | undefined> {
    const branch = common.run.environment.spec.repository.defaultBranch;
    const head =
      probed ??
      (await this.options.runtime
        .exec(ctx.sandboxId, {
          argv: HEAD_PROBE,
          workdir: ctx.workdir,
          timeoutMs: 30_000,
          signal: common.signal,
        })
        .catch(() => undefined));
    if (head?.exitCode !== 0 || head.stdout.trim() !== `${entry.commit}\nrefs/heads/${branch}`)
      return undefined;
    common.emit({
      type: 'log',
      stream: 'system',
      text: `${branch} is at the cache entry's commit ${entry.commit.slice(0, 12)}: nothing to fetch\n`,
    });
    return { commit: entry.commit, branch };
  }

  /**
   * The sandbox of a builder whose claim was taken over (its orchestrator was killed or froze)
   * may still be running its setup, with the setup network: it is removed before this build
   * starts, so two setups of one key never run at once. The claim's owner is
   * `<orchestrator>/<attempt id>`; sandboxes of this instance labelled with that attempt go.
   */
  private async stopEarlierBuild(
    owner: string,
    ownAttemptId: string,
    emit: (event: AttemptEventBody) => void,
  ): Promise<void> {
    const attemptId = owner.slice(owner.lastIndexOf('/') + 1);
    if (!/^att_[0-9a-z]+$/.test(attemptId) || attemptId === ownAttemptId) return;
    const { runtime } = this.options;
    try {
      const left = await runtime.list({ [BERTH_LABELS.attempt]: attemptId });
      for (const sandbox of left) await runtime.remove(sandbox.id);
      if (left.length > 0)
        emit({
          type: 'log',
          stream: 'system',
          text: `stopped ${left.length} sandbox(es) of the earlier build (attempt ${attemptId}) before this one starts\n`,
        });
    } catch (error) {
      emit({
        type: 'warning',
        message: `could not stop the sandbox of the earlier build (attempt ${attemptId}): ${toBerthError(error).message}`,
      });
    }
  }

  private snapshotImageOf(run: AttemptRun): string {
    return `berth-snapshot:${run.attemptId.replace(/_/g, '-')}`;
  }

  private async snapshot(
    sandboxId: string,
    run: AttemptRun,
    labels: Record<string, string>,
  ): Promise<string> {
    const expiresAt = new Date(this.now().getTime() + this.options.snapshotTtlMs).toISOString();
    const tag = run.attemptId.replace(/_/g, '-');
    await this.options.runtime.commit(sandboxId, {
      repository: 'berth-snapshot',
      tag,
      labels: { ...labels, [BERTH_LABELS.kind]: 'snapshot', 'berth.expires-at': expiresAt },
    });
    return `berth-snapshot:${tag}`;
  }

  private async cleanup(
    run: AttemptRun,
    sandboxId: string | undefined,
    network: string | undefined,
  ): Promise<void> {
    const { runtime } = this.options;
    const warn = (what: string) => (error: unknown) =>
      run.emit({
        type: 'warning',
        message: `could not remove the ${what}: ${toBerthError(error).message}`,
      });
    // The usage of the attempt (issue 17): one stats read before the sandbox goes; never fatal.
    if (sandboxId !== undefined && run.onSandboxStats !== undefined && runtime.sandboxStats)
      await runtime.sandboxStats(sandboxId).then(
        (stats) => stats && run.onSandboxStats?.(stats),
        () => undefined,
      );
    if (sandboxId !== undefined) await runtime.remove(sandboxId).catch(warn('sandbox'));
    await this.options.enforcer.release(run.attemptId).catch(warn('network policy'));
    const networkGone =
      network === undefined ||
      (await runtime.removeNetwork(network).then(
        () => true,
        (error: unknown) => (warn('network')(error), false),
      ));
    // The setup network's firewall stays while its bridge may still carry a sandbox: a network
    // that could not be removed keeps its rules, swept once its bridge is gone.
    if (networkGone)
      await this.setupGuard.release(run.attemptId).catch(warn("setup network's firewall rules"));
    else this.setupGuard.releaseWhenGone(run.attemptId);
  }
}

interface CommonRun {
  run: AttemptRun;
  masker: SecretMasker;
  emit: (event: AttemptEventBody) => void;
  signal: AbortSignal;
  labels: Record<string, string>;
  /** The bundle of a local repository (made on first call). */
  bundle: (() => Promise<Buffer>) | undefined;
  /** A local repository's default branch commit on the host, when the task asks for that branch. */
  localHead: Promise<string | undefined> | undefined;
  /** The network to start a sandbox on: made on first need; undefined when none is needed. */
  network: (needed: boolean) => Promise<string | undefined>;
  repository: string;
  onSandbox: (id: string) => void;
  /** The attempt resumed from a cache entry the warm pool can serve. */
  onWarmable: (spec: WarmSpec) => void;
}
