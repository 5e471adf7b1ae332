import { namesDefaultBranch, settleDefaultBranch } from '../domain/environment/default-branch.js';
import type { DefaultBranchOrigin } from '../domain/environment/environment.js';
import { readRepositoryHeads } from '../git/remote-heads.js';
import type { PublicRemoteOptions } from '../git/public-remote-heads.js';
import { repositoryCredentials } from './repository-credentials.js';
import { taskExitCode, VERIFY_FAILED_EXIT_CODE } from '../domain/task/task-exit-code.js';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { isMap, parse as parseYaml, parseDocument } from 'yaml';
import { DockerRuntime } from '../adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentFile } from '../domain/environment/environment-file.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import { newId } from '../domain/ids.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import type { Store } from '../ports/store.js';
import type { Scheduler } from './scheduler.js';
import { createOrchestrator } from './orchestrator.js';
import type { EgressEnforcerOptions } from '../egress/egress-enforcer.js';
import { SecretBox, type SecretKeySource } from '../secrets/secret-box.js';
import { DockerImageEngine } from '../adapters/runtime/docker/docker-image-engine.js';
import { LanguageLayer, languageImagePreparer } from '../images/language-versions.js';
import type { ModelClient } from '../ports/model-client.js';
import type { AgentLimitsOverride } from '../agent/agent-loop.js';
import { formatProgress } from './progress-format.js';
import { attemptView, type AttemptView } from '../server/task-views.js';

export { formatProgress };

/**
 * `berth run`: one task end to end on this machine, without a server, for CI and scripts. The
 * environment comes from a file; tasks, attempts, their logs and the cache live in an embedded
 * SQLite store in the data directory (so the cache is reused by the next run). Progress goes to
 * stderr, the result to stdout (one JSON object with `json`); the exit code is 0 only when every
 * attempt succeeded.
 */

export interface RunLocalOptions {
  envFile: string;
  /** Replaces the file's repository (a URL, or a local path: allowed here, it is the user's machine). */
  repo?: string | undefined;
  branch?: string | undefined;
  sha?: string | undefined;
  attempts?: number | undefined;
  command?: string | undefined;
  prompt?: string | undefined;
  json?: boolean | undefined;
  dataDir: string;
  /** The value of a secret the environment declares (the CLI reads it from its own environment). */
  lookupSecret?: ((name: string) => string | undefined) | undefined;
  instance?: string | undefined;
  dockerSocket?: string | undefined;
  cacheTtlMs?: number | undefined;
  /** Free disk below which no attempt starts (default 2048 MB; 0: off). */
  minFreeDiskMb?: number | undefined;
  snapshotTtlMs?: number | undefined;
  concurrency?: number | undefined;
  maxAttempts?: number | undefined;
  /** Maps `minimal`/`universal` to a local image; defaults to the image builder's names. */
  resolveImage?: ((name: string) => string) | undefined;
  /** The model for a prompt (without one, a command is needed). */
  model?: ModelClient | undefined;
  agentLimits?: AgentLimitsOverride | undefined;
  /** For tests: a runtime to use instead of Docker at `dockerSocket`. */
  runtime?: SandboxRuntime | undefined;
  /** `--require-verify`: a failed verification makes the exit code 3 (see task-exit-code.ts). */
  requireVerify?: boolean | undefined;
  /** Cancels the run (Ctrl-C); attempts stop and clean up. */
  signal?: AbortSignal | undefined;
  /** The egress proxy's settings (internet `allowlist`/`on`); without them the agent phase has no network. */
  egress?: EgressEnforcerOptions | undefined;
  /** Address ranges the setup network reaches besides the public internet (`BERTH_SETUP_ALLOW`). */
  setupAllow?: readonly string[] | undefined;
  /** Where the key that seals each environment's egress CA in the store comes from. */
  secretKey?: SecretKeySource | undefined;
}

export interface RunLocalIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** An attempt as `berth run --json` shows it: the same view as the API's. */
export type RunLocalAttempt = AttemptView;

export interface RunLocalResult {
  task: { id: string; status: string };
  attempts: RunLocalAttempt[];
}

export const AGENT_NOT_BUILT =
  'no model is configured for the agent: set BERTH_MODEL_BASE_URL, BERTH_MODEL_API_KEY and BERTH_MODEL (or --model-base-url and --model), or give --command "…" to run a command instead (for example --command "npm test")';

/**
 * The environment file's text, with `repository` set to `repo` when the file has none: `--repo`
 * then names the repository (an environment file kept apart from any one repository). A file
 * that has one keeps it; the task's `--repo` overrides it.
 */
function withRepository(text: string, repo: string | undefined): string {
  if (repo === undefined) return text;
  const doc = parseDocument(text);
  if (doc.errors.length > 0 || !isMap(doc.contents) || doc.has('repository')) return text;
  doc.set('repository', repo);
  return doc.toString();
}

/**
 * `repository.defaultBranch` settled with the repository the task uses (`--repo`, else the
 * file's), as the server does when an environment is written (default-branch.ts): a local one's
 * HEAD when the file names no branch; a named branch it does not have is refused. With where the
 * branch came from, as the server records it: `named` (in the file), `found` (the HEAD) or
 * `assumed` (not asked, such as an ssh repository, or no answer: the attempt asks at its start).
 */
async function withSettledDefaultBranch(
  written: unknown,
  spec: EnvironmentSpec,
  repo: string | undefined,
  file: string,
  asking: PublicRemoteOptions,
): Promise<{ spec: EnvironmentSpec; origin: DefaultBranchOrigin }> {
  const heads = await readRepositoryHeads(repo ?? spec.repository.url, asking);
  const named = namesDefaultBranch(written) ? spec.repository.defaultBranch : undefined;
  const decision = settleDefaultBranch(named, spec.repository.defaultBranch, heads);
  if (!decision.ok) {
    throw new BerthError(
      'invalid_environment',
      `${file}: repository.defaultBranch: ${decision.message}`,
    );
  }
  return {
    spec: { ...spec, repository: { ...spec.repository, defaultBranch: decision.branch } },
    origin: named !== undefined ? 'named' : decision.found ? 'found' : 'assumed',
  };
}

async function ensureEnvironment(
  store: Store,
  spec: EnvironmentSpec,
  defaultBranchOrigin: DefaultBranchOrigin,
): Promise<string> {
  const now = new Date().toISOString();
  const existing = await store.getEnvironmentByName(spec.name);
  if (existing === undefined) {
    const created = await store.createEnvironment({
      id: newId('environment'),
      spec,
      createdByTokenId: null,
      secrets: [],
      now,
      defaultBranchOrigin,
    });
    return created.id;
  }
  if (
    JSON.stringify(existing.spec) !== JSON.stringify(spec) ||
    existing.defaultBranchOrigin !== defaultBranchOrigin
  ) {
    await store.updateEnvironment(existing.id, {
      spec,
      setSecrets: [],
      removeSecrets: [],
      now,
      defaultBranchOrigin,
    });
  }
  return existing.id;
}

function formatHuman(result: RunLocalResult): string {
  const lines: string[] = [`task ${result.task.id}: ${result.task.status}`];
  for (const attempt of result.attempts) {
    lines.push(
      `attempt ${attempt.id}: ${attempt.status}${attempt.error ? ` (${attempt.error})` : ''}`,
    );
    if (attempt.message !== '') lines.push(`  ${attempt.message}`);
    const files = attempt.files.map((f) => `  ${f.binary ? 'binary ' : ''}${f.path}`);
    if (files.length > 0) lines.push(`  changed files:`, ...files);
  }
  const diffs = result.attempts.filter((a) => a.diff !== '');
  if (diffs.length === 1) lines.push('', diffs[0]?.diff.trimEnd() ?? '');
  return `${lines.join('\n')}\n`;
}

export async function runLocal(options: RunLocalOptions, io: RunLocalIo): Promise<number> {
  let store: SqliteStore | undefined;
  let scheduler: Scheduler | undefined;
  try {
    const hasCommand = options.command !== undefined && options.command.trim() !== '';
    if (!hasCommand && (options.prompt === undefined || options.prompt.trim() === '')) {
      throw new BerthError('invalid_input', 'give a prompt, or a command to run with --command');
    }
    if (!hasCommand && options.model === undefined) {
      throw new BerthError('invalid_input', AGENT_NOT_BUILT);
    }
    let text: string;
    try {
      text = await readFile(options.envFile, 'utf8');
    } catch (error) {
      throw new BerthError(
        'invalid_input',
        `cannot read the environment file ${options.envFile}: ${(error as Error).message}`,
      );
    }
    const written = withRepository(text, options.repo);
    const parsed = parseEnvironmentFile(written, options.envFile);
    // Templates live in a server's store: a file that extends one is refused, not run without it.
    if (parsed.extends !== undefined)
      throw new BerthError(
        'invalid_environment',
        `${options.envFile}: extends: berth run has no templates (they live on a server); create the environment with berth env create --file ${options.envFile} and use berth exec --env ${parsed.name}`,
        { issues: [{ path: 'extends', message: 'berth run has no templates' }] },
      );
    const secrets: Record<string, string> = {};
    const missing: string[] = [];
    for (const name of parsed.secrets) {
      const value = options.lookupSecret?.(name);
      if (value === undefined) missing.push(name);
      else secrets[name] = value;
    }
    if (missing.length > 0) {
      throw new BerthError(
        'invalid_input',
        `the environment declares secrets that are not set: ${missing.join(', ')} (set them as variables of the same name)`,
      );
    }
    const { spec, origin } = await withSettledDefaultBranch(
      parseYaml(written) as unknown,
      parsed,
      options.repo,
      options.envFile,
      {
        allow: options.setupAllow ?? [],
        credentials: repositoryCredentials(parsed, secrets, options.repo),
      },
    );
    if (options.requireVerify === true && spec.verify === undefined) {
      throw new BerthError(
        'invalid_input',
        `--require-verify: the environment file ${options.envFile} has no verify command (add "verify: …" to it)`,
      );
    }
    const attempts = options.attempts ?? 1;
    const runtime =
      options.runtime ??
      new DockerRuntime({
        socketPath: options.dockerSocket ?? '/var/run/docker.sock',
        instance: options.instance ?? 'default',
      });
    try {
      await runtime.info();
    } catch (error) {
      throw new BerthError(
        'runtime_unavailable',
        `the Docker engine is not reachable: ${toBerthError(error).message}`,
      );
    }
    store = SqliteStore.open(options.dataDir);
    await store.migrate();
    const environmentId = await ensureEnvironment(store, spec, origin);

    const command =
      options.command !== undefined && options.command.trim() !== '' ? options.command : null;
    // The data directory may be shared (with `berth serve` or another run): claim our task only.
    const onlyTasks = new Set<string>();
    const orchestrator = createOrchestrator({
      store,
      runtime,
      model: options.model,
      agentLimits: options.agentLimits,
      openSecrets: () => Promise.resolve(secrets),
      resolveImage: options.resolveImage,
      prepareImage: languageImagePreparer(
        new LanguageLayer({
          engine: new DockerImageEngine({
            socketPath: options.dockerSocket ?? '/var/run/docker.sock',
          }),
        }),
      ),
      cacheTtlMs: options.cacheTtlMs ?? 12 * 3600_000,
      minFreeDiskMb: options.minFreeDiskMb,
      snapshotTtlMs: options.snapshotTtlMs ?? 7 * 24 * 3600_000,
      // `berth run` works on the user's own machine: a local path is theirs to give.
      allowLocalRepositories: true,
      knownHostsDir: join(options.dataDir, 'known_hosts'),
      concurrency: Math.min(attempts, options.concurrency ?? 8),
      maxAttempts: options.maxAttempts ?? 8,
      pollMs: 200,
      onlyTasks,
      egress: options.egress,
      setupAllow: options.setupAllow,
      ...(options.egress !== undefined && options.secretKey !== undefined
        ? { secretBox: SecretBox.load(options.secretKey).box }
        : {}),
    });
    scheduler = orchestrator.scheduler;
    const { task, attempts: created } = await scheduler.submit({
      environmentId,
      prompt: options.prompt ?? '',
      command,
      ref: {
        ...(options.branch !== undefined ? { branch: options.branch } : {}),
        ...(options.sha !== undefined ? { sha: options.sha } : {}),
      },
      repository: options.repo ?? null,
      attempts,
    });
    onlyTasks.add(task.id);
    for (const attempt of created) {
      const prefix = attempts > 1 ? `[${attempt.index + 1}] ` : '';
      scheduler.subscribe(attempt.id, (event) => io.stderr(formatProgress(event, prefix)));
    }
    io.stderr(
      `task ${task.id} on environment ${spec.name}: ${attempts} attempt(s), ${command !== null ? `running "${command}"` : 'the agent working on the prompt'}\n`,
    );
    const sched = scheduler;
    const onAbort = () => void sched.cancel(task.id).catch(() => undefined);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    await scheduler.start();
    const finished = await scheduler.waitForTask(task.id);
    options.signal?.removeEventListener('abort', onAbort);
    const result: RunLocalResult = {
      task: { id: finished.id, status: finished.status },
      attempts: (await store.listAttempts(task.id)).map(attemptView),
    };
    io.stdout(options.json ? `${JSON.stringify(result, null, 2)}\n` : formatHuman(result));
    const exitCode = taskExitCode(
      result.attempts,
      options.requireVerify === true || spec.verifyRequired === true,
    );
    if (exitCode === VERIFY_FAILED_EXIT_CODE) {
      const unverified = result.attempts.filter((a) => a.verification?.passed !== true);
      io.stderr(
        `berth run: verification is required (${options.requireVerify === true ? '--require-verify' : 'verifyRequired: true'}) and failed for ${unverified.map((a) => a.id).join(', ')}: exit code ${VERIFY_FAILED_EXIT_CODE}\n`,
      );
    }
    return exitCode;
  } catch (thrown) {
    const error = toBerthError(thrown);
    if (options.json)
      io.stdout(`${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`);
    io.stderr(`berth run: ${error.message}\n`);
    return error.exitCode;
  } finally {
    await scheduler?.stop({ cancelRunning: true });
    await store?.close();
  }
}
