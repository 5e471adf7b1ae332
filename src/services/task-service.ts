import type { CurrentKeyInputs } from '../domain/cache/cache-staleness.js';
import type { CacheEntry } from '../domain/cache/cache-entry.js';
import type { CacheResetReport } from '../domain/cache/cache-reset.js';
import type { AttemptEvent } from '../domain/task/attempt-event.js';
import { attemptStatus, type Attempt } from '../domain/task/attempt.js';
import { newId } from '../domain/ids.js';
import type { Task, TaskAgentOptions } from '../domain/task/task.js';
import { BerthError } from '../errors/berth-error.js';
import type { LeasedAttempt, Store, StoredEnvironment } from '../ports/store.js';
import type { Caller } from './caller.js';
import { EnvironmentService } from './environment-service.js';
import type {
  OpenPullRequestInput,
  PullRequestOpener,
  PullRequestOutcome,
} from './pull-request-service.js';
import type { GitCredentials } from '../lifecycle/checkout.js';
import { codeBlock } from '../git/inert-markdown.js';
import { repositoryCredentials } from '../lifecycle/repository-credentials.js';
import { maskStoredDiff } from '../lifecycle/result-diff.js';
import { scanPatterns } from '../lifecycle/secret-scan.js';
import { SecretMasker } from '../secrets/secret-masker.js';
import { checkBudgets } from '../usage/budget-check.js';

/**
 * Tasks as the API and the CLI see them: submitting against an environment the caller may use,
 * reading tasks, attempts and their logs, cancelling, and an environment's cache. A task is
 * visible exactly when its environment is; anything else is `not_found`, like a missing one.
 */

export interface TaskSubmission {
  environment: string;
  prompt?: string | undefined;
  command?: string | undefined;
  branch?: string | undefined;
  sha?: string | undefined;
  attempts?: number | undefined;
  /** false: the environment's `verify` is not run (`berth env test`). */
  verify?: boolean | undefined;
  /** Internet off, nothing pushed (`@berth review`; TaskAgentOptions.readOnly). */
  readOnly?: boolean | undefined;
  /** Setup without the environment's secrets (a fork's pull request). */
  withoutSecrets?: boolean | undefined;
  model?: string | undefined;
  limits?:
    | {
        maxTurns?: number | undefined;
        wallTimeMs?: number | undefined;
        maxTokens?: number | undefined;
      }
    | undefined;
}

/** What the scheduler offers the service (the lifecycle's Scheduler implements it). */
export interface TaskRunner {
  submit(input: {
    environmentId: string;
    prompt: string;
    command: string | null;
    ref: { branch?: string; sha?: string };
    attempts: number;
    agent?: TaskAgentOptions | null;
    createdBy?: string | null;
  }): Promise<{ task: Task }>;
  cancel(taskId: string): Promise<void>;
  subscribe(attemptId: string, listener: (event: AttemptEvent) => void): () => void;
}

export interface TaskServiceOptions {
  store: Store;
  runner: TaskRunner;
  /**
   * Drops an environment's cache entries and their images; says what keeps an image that could
   * not be removed (a bare count from a runner that cannot tell).
   */
  resetCache(environmentId: string): Promise<number | CacheResetReport>;
  /** Each entry's size beyond its base image, by entry id (null: unknown). */
  cacheSizes?: (entries: readonly CacheEntry[]) => Promise<Map<string, number | null>>;
  /**
   * The key parts the store cannot tell (base image, secrets) as they are now, by entry id
   * (`currentKeyInputs`), so `stale` sees every part of the key.
   */
  cacheKeyNow?: (
    environment: StoredEnvironment,
    entries: readonly CacheEntry[],
  ) => Promise<Map<string, CurrentKeyInputs>>;
  /** Whether a prompt (not only `--command`) can run: the agent needs a model. */
  agentAvailable: boolean;
  agentUnavailableReason: string;
  /** Pushes a picked diff and opens a pull request (`berth task pr`); absent: refused. */
  pullRequests?: PullRequestOpener;
  /** Opens an environment's secrets, for its `repository.credentials` (`task pr`). */
  openSecrets?: (environment: StoredEnvironment) => Promise<Record<string, string>>;
}

export interface TaskDetail {
  task: Task;
  environment: StoredEnvironment;
  attempts: LeasedAttempt[];
}

/** The task's own agent options, without empty fields; null when it chose nothing. */
function agentOptions(input: TaskSubmission): TaskAgentOptions | null {
  const limits = Object.fromEntries(
    Object.entries(input.limits ?? {}).filter(([, v]) => v !== undefined),
  );
  const out: TaskAgentOptions = {
    ...(input.model !== undefined ? { model: input.model } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(input.verify === false ? { skipVerify: true } : {}),
    ...(input.readOnly === true ? { readOnly: true } : {}),
    ...(input.withoutSecrets === true ? { withoutSecrets: true } : {}),
  };
  return Object.keys(out).length > 0 ? out : null;
}

function notFound(taskId: string): BerthError {
  return new BerthError('not_found', `task ${taskId} not found`, { task: taskId });
}

export class TaskService {
  constructor(private readonly options: TaskServiceOptions) {}

  private async environmentFor(
    caller: Caller,
    environmentId: string,
  ): Promise<StoredEnvironment | undefined> {
    const environment = await this.options.store.getEnvironmentById(environmentId);
    return environment && EnvironmentService.canSee(caller, environment) ? environment : undefined;
  }

  private async visibleEnvironment(caller: Caller, name: string): Promise<StoredEnvironment> {
    const environment = await this.options.store.getEnvironmentByName(name);
    if (!environment || !EnvironmentService.canSee(caller, environment)) {
      // The same refusal as the environment routes' (EnvironmentService), word for word.
      throw new BerthError('not_found', `environment "${name}" not found`, { name });
    }
    return environment;
  }

  async submit(caller: Caller, input: TaskSubmission): Promise<TaskDetail> {
    const environment = await this.visibleEnvironment(caller, input.environment);
    const command = input.command?.trim() ? input.command : null;
    const prompt = input.prompt ?? '';
    if (command === null && prompt.trim() === '') {
      throw new BerthError('invalid_input', 'give a prompt, or a command to run with --command');
    }
    if (command === null && !this.options.agentAvailable) {
      throw new BerthError('invalid_input', this.options.agentUnavailableReason);
    }
    if (input.branch !== undefined && input.sha !== undefined) {
      throw new BerthError('invalid_input', 'give either a branch or a SHA, not both');
    }
    const { task } = await this.options.runner.submit({
      environmentId: environment.id,
      prompt,
      command,
      ref: {
        ...(input.branch !== undefined ? { branch: input.branch } : {}),
        ...(input.sha !== undefined ? { sha: input.sha } : {}),
      },
      attempts: input.attempts ?? 1,
      agent: agentOptions(input),
      createdBy: caller.tokenName,
    });
    return this.get(caller, task.id);
  }

  /**
   * A cheap mark of the newest tasks' state (ids, statuses, update times; no attempts, no
   * results), which changes when one of them does: the task stream reads the whole list again
   * when it changes. Only compared on the server, never sent (it covers tasks the caller may not see).
   */
  async listMark(limit: number): Promise<string> {
    const tasks = await this.options.store.listTasks({ limit: Math.min(limit, 500) });
    return tasks.map((t) => `${t.id} ${t.status} ${t.updatedAt}`).join('\n');
  }

  async list(
    caller: Caller,
    options: { environment?: string | undefined; limit?: number | undefined },
  ): Promise<TaskDetail[]> {
    const { store } = this.options;
    const only =
      options.environment !== undefined
        ? await this.visibleEnvironment(caller, options.environment)
        : undefined;
    const tasks = await store.listTasks({
      ...(only ? { environmentId: only.id } : {}),
      limit: Math.min(options.limit ?? 50, 500),
    });
    const out: TaskDetail[] = [];
    const seen = new Map<string, StoredEnvironment | undefined>();
    for (const task of tasks) {
      if (!seen.has(task.environmentId))
        seen.set(task.environmentId, await this.environmentFor(caller, task.environmentId));
      const environment = seen.get(task.environmentId);
      if (environment) {
        const attempts = await this.checkStoredResults(
          environment,
          await store.listAttempts(task.id),
        );
        out.push({ task, environment, attempts });
      }
    }
    return out;
  }

  async get(caller: Caller, taskId: string): Promise<TaskDetail> {
    const { store } = this.options;
    const task = await store.getTask(taskId);
    const environment = task ? await this.environmentFor(caller, task.environmentId) : undefined;
    if (!task || !environment) throw notFound(taskId);
    const attempts = await this.checkStoredResults(environment, await store.listAttempts(taskId));
    return { task, environment, attempts };
  }

  /**
   * Results stored before diffs were checked for secret values (no `secretFiles`) are checked
   * against the environment's current values before anything uses them, so no route serves such
   * a value and `task pr` and `task apply` refuse it as they refuse a new one (result-diff.ts).
   */
  private async checkStoredResults(
    environment: StoredEnvironment,
    attempts: LeasedAttempt[],
  ): Promise<LeasedAttempt[]> {
    const unchecked = (a: LeasedAttempt) => a.result !== null && a.result.secretFiles === undefined;
    if (
      !attempts.some(unchecked) ||
      environment.spec.secrets.length === 0 ||
      !this.options.openSecrets
    )
      return attempts;
    const masker = new SecretMasker(
      scanPatterns(Object.values(await this.options.openSecrets(environment))),
    );
    const out: LeasedAttempt[] = [];
    for (const attempt of attempts) {
      const result = attempt.result;
      if (result === null || !unchecked(attempt)) {
        out.push(attempt);
        continue;
      }
      const checked = await maskStoredDiff(result.diff, masker);
      out.push({
        ...attempt,
        result: {
          ...result,
          ...checked,
          ...(result.turnDiff !== undefined
            ? { turnDiff: (await maskStoredDiff(result.turnDiff, masker)).diff }
            : {}),
        },
      });
    }
    return out;
  }

  /** The attempt of a task by id, or the picked one (else the first) when none is named. */
  async attempt(
    caller: Caller,
    taskId: string,
    attemptId?: string,
  ): Promise<{ detail: TaskDetail; attempt: LeasedAttempt }> {
    const detail = await this.get(caller, taskId);
    const wanted = attemptId ?? detail.task.pickedAttemptId ?? undefined;
    const attempt =
      wanted === undefined ? detail.attempts[0] : detail.attempts.find((a) => a.id === wanted);
    if (!attempt) {
      throw new BerthError(
        'not_found',
        `attempt ${attemptId ?? '(first)'} of task ${taskId} not found`,
        {
          task: taskId,
          attempts: detail.attempts.map((a) => a.id),
        },
      );
    }
    return { detail, attempt };
  }

  /**
   * Marks the attempt the user chose. A failed or cancelled attempt may be picked (its diff may
   * still be useful), with a warning; one that has not finished, or does not exist, is refused.
   */
  async pick(
    caller: Caller,
    taskId: string,
    attemptId: string,
  ): Promise<{ detail: TaskDetail; warning: string | null }> {
    const detail = await this.get(caller, taskId);
    const attempt = detail.attempts.find((a) => a.id === attemptId);
    if (!attempt) {
      const ids = detail.attempts.map((a) => a.id);
      throw new BerthError(
        'not_found',
        `task ${taskId} has no attempt ${attemptId} (its attempts: ${ids.join(', ')})`,
        {
          task: taskId,
          attempts: ids,
        },
      );
    }
    const status = attemptStatus(attempt.phase);
    if (status === 'queued' || status === 'running') {
      throw new BerthError(
        'conflict',
        `attempt ${attemptId} has not finished yet (${attempt.phase}); pick it once it has`,
        {
          attempt: attemptId,
          phase: attempt.phase,
        },
      );
    }
    await this.options.store.pickAttempt(taskId, attemptId, new Date().toISOString());
    const warning =
      status === 'succeeded'
        ? null
        : `attempt ${attemptId} ${status === 'failed' ? 'failed' : 'was cancelled'}${attempt.error ? ` (${attempt.error.message})` : ''}; it is picked anyway`;
    return { detail: await this.get(caller, taskId), warning };
  }

  /**
   * The attempt whose result `diff` and `apply` use: the one named, else the picked one (a lone
   * attempt is picked already); `conflict` when there are several and none is picked, rather than
   * quietly taking the first.
   */
  async resultAttempt(
    caller: Caller,
    taskId: string,
    attemptId?: string,
  ): Promise<{ detail: TaskDetail; attempt: LeasedAttempt }> {
    if (attemptId !== undefined) return this.attempt(caller, taskId, attemptId);
    return this.pickedAttempt(caller, taskId, ', or name one with --attempt ATTEMPT');
  }

  /** The picked attempt (a lone attempt is picked already); `conflict` when none is picked yet. */
  async pickedAttempt(
    caller: Caller,
    taskId: string,
    alternative = '',
  ): Promise<{ detail: TaskDetail; attempt: LeasedAttempt }> {
    const detail = await this.get(caller, taskId);
    const { task, attempts } = detail;
    const id = task.pickedAttemptId ?? (task.attemptCount === 1 ? attempts[0]?.id : undefined);
    const attempt = attempts.find((a) => a.id === id);
    if (!attempt) {
      throw new BerthError(
        'conflict',
        `task ${taskId} has ${attempts.length} attempts and none is picked: berth task pick ${taskId} ATTEMPT${alternative} (attempts: ${attempts.map((a) => a.id).join(', ')})`,
        { task: taskId, attempts: attempts.map((a) => a.id) },
      );
    }
    return { detail, attempt };
  }

  /**
   * A follow-up turn on the picked attempt: a new attempt of the same task that starts from the
   * picked attempt's snapshot and resumes its stored conversation, asked `prompt` (when no
   * conversation was kept: with the earlier prompt and final message for context), or running
   * `command`. It becomes the pick. Refused when the picked attempt has not
   * finished or left no snapshot; an expired snapshot fails the turn with a message saying so.
   */
  async followUp(
    caller: Caller,
    taskId: string,
    input: { prompt?: string | undefined; command?: string | undefined },
  ): Promise<{ detail: TaskDetail; attempt: LeasedAttempt }> {
    const command = input.command?.trim() ? input.command : null;
    const request = input.prompt ?? '';
    if (command === null && request.trim() === '') {
      throw new BerthError(
        'invalid_input',
        'give a follow-up prompt, or a command to run with --command',
      );
    }
    if (command === null && !this.options.agentAvailable) {
      throw new BerthError('invalid_input', this.options.agentUnavailableReason);
    }
    const { detail, attempt: parent } = await this.pickedAttempt(caller, taskId);
    const status = attemptStatus(parent.phase);
    if (status === 'queued' || status === 'running') {
      throw new BerthError(
        'conflict',
        `attempt ${parent.id} has not finished yet (${parent.phase}); follow up once it has`,
      );
    }
    const snapshotImage = parent.result?.snapshotImage;
    if (!parent.result || !snapshotImage) {
      throw new BerthError(
        'conflict',
        `attempt ${parent.id} left no snapshot to continue from (${parent.error?.message ?? 'no result'})`,
        {
          attempt: parent.id,
        },
      );
    }
    const earlier = parent.followUp?.request ?? (detail.task.prompt || detail.task.command || '');
    const prompt =
      command !== null
        ? request
        : `This continues earlier work in the same workspace.\n\nEarlier request:\n${earlier}\n\nYour final message then:\n${parent.result.message}\n\nFollow-up request:\n${request}`;
    // A follow-up is one more attempt of the environment: its daily budgets apply (issue 17).
    const environment = await this.options.store.getEnvironmentById(detail.task.environmentId);
    if (environment !== undefined)
      await checkBudgets(this.options.store, environment, 1, new Date());
    const now = new Date().toISOString();
    const attempt: Attempt = {
      id: newId('attempt'),
      taskId,
      index: detail.attempts.length,
      phase: 'queued',
      cacheHit: null,
      error: null,
      result: null,
      followUp: {
        parentAttemptId: parent.id,
        request: command ?? request,
        prompt,
        command,
        snapshotImage,
        baseCommit: parent.followUp?.baseCommit ?? parent.result.baseCommit,
      },
      createdAt: now,
      startedAt: null,
      finishedAt: null,
    };
    await this.options.store.addFollowUpAttempt(attempt, now);
    const after = await this.get(caller, taskId);
    const stored = after.attempts.find((a) => a.id === attempt.id);
    if (!stored) throw new BerthError('internal', `follow-up ${attempt.id} was not stored`);
    return { detail: after, attempt: stored };
  }

  /**
   * Pushes the picked attempt's diff as branch `berth/<task-id>` (committed with the prompt, or
   * the command, as message) and, for GitHub, opens or updates the pull request into the task's
   * branch, else the environment's default branch.
   */
  async pullRequest(
    caller: Caller,
    taskId: string,
    options: {
      title?: string | undefined;
      draft?: boolean | undefined;
      allowWorkflows?: boolean | undefined;
      /** The pull request's body (the GitHub integration's `Fixes #N`); default: the summary. */
      body?: string | undefined;
      /** The commit's message; default: the prompt (the GitHub integration's holds no untrusted text). */
      commitMessage?: string | undefined;
      /** Onto this existing branch, no pull request (OpenPullRequestInput.pushTo). */
      pushTo?: string | undefined;
      /** The pull request in another repository of the network (OpenPullRequestInput.pullInto). */
      pullInto?: OpenPullRequestInput['pullInto'];
      /** Git and API credentials when the environment has none (a GitHub App's installation token). */
      credentials?: GitCredentials | undefined;
    },
  ): Promise<PullRequestOutcome & { attempt: string }> {
    const opener = this.options.pullRequests;
    if (!opener)
      throw new BerthError('invalid_input', 'pull requests are not set up on this server');
    const { detail, attempt } = await this.pickedAttempt(caller, taskId);
    const { task, environment } = detail;
    const result = attempt.result;
    if (!result) {
      throw new BerthError(
        'invalid_input',
        `attempt ${attempt.id} has no result (${attempt.error?.message ?? attempt.phase}); there is nothing to push`,
      );
    }
    if (result.secretFiles !== undefined && result.secretFiles.length > 0) {
      throw new BerthError(
        'invalid_input',
        `attempt ${attempt.id}'s diff holds a secret value of the environment in ${result.secretFiles.join(', ')} (masked in the diff); nothing was pushed. Keep credentials out of the repository's working tree (a file outside it, or a .gitignore entry), then run the task again`,
        { attempt: attempt.id, secretFiles: result.secretFiles },
      );
    }
    const what = (task.prompt.trim() !== '' ? task.prompt : (task.command ?? '')).trim();
    const firstLine = what.split('\n')[0] ?? '';
    const title =
      options.title?.trim() ||
      (firstLine.length > 72 ? `${firstLine.slice(0, 71)}…` : firstLine) ||
      `Berth task ${task.id}`;
    // The environment's git credentials, for its own repository only (repository-credentials.ts).
    let credentials: GitCredentials | undefined = options.credentials;
    if (environment.spec.repository.credentials !== undefined) {
      if (!this.options.openSecrets)
        throw new BerthError('internal', 'the task service cannot open secrets for the push');
      credentials = repositoryCredentials(
        environment.spec,
        await this.options.openSecrets(environment),
        task.repository,
      );
    }
    const commitMessage = options.commitMessage ?? (what || `Berth task ${task.id}`);
    // The agent's final message is hostile: in a code block it cannot close (inert-markdown.ts),
    // where GitHub pings nobody, closes no issue and shows no HTML or image.
    const body =
      options.body ??
      `${result.message.trim() !== '' ? `The agent's summary:\n\n${codeBlock(result.message)}` : 'The agent left no summary.'}\n\n---\nMade by Berth: task ${task.id}, attempt ${attempt.id}.`;
    // The environment's secrets as they are now, looked for in everything that is pushed (a diff
    // stored before they were set, a prompt a person pasted a token into).
    if (environment.spec.secrets.length > 0 && this.options.openSecrets) {
      const found = await secretsIn(
        await this.options.openSecrets(environment),
        {
          'the commit message (the task prompt)': commitMessage,
          "the pull request's title": title,
          "the pull request's body": body,
        },
        result.diff,
      );
      if (found.length > 0) {
        throw new BerthError(
          'invalid_input',
          `${found.join(', ')} holds a secret value of the environment; nothing was pushed${found.includes('the diff') ? '' : ' (give another title with --title, or start a task whose prompt holds no secret)'}`,
          { found },
        );
      }
    }
    const outcome = await opener.open({
      ...(credentials ? { credentials } : {}),
      taskId: task.id,
      environmentId: environment.id,
      repository: task.repository ?? environment.spec.repository.url,
      base: task.ref.branch ?? environment.spec.repository.defaultBranch,
      baseCommit: result.baseCommit,
      diff: result.diff,
      commitMessage,
      title,
      body,
      draft: options.draft ?? false,
      allowWorkflows: options.allowWorkflows ?? false,
      ...(options.pushTo !== undefined ? { pushTo: options.pushTo } : {}),
      ...(options.pullInto !== undefined ? { pullInto: options.pullInto } : {}),
    });
    return { ...outcome, attempt: attempt.id };
  }

  async events(
    caller: Caller,
    taskId: string,
    attemptId: string,
    afterSeq = 0,
    limit = 1000,
  ): Promise<AttemptEvent[]> {
    const { attempt } = await this.attempt(caller, taskId, attemptId);
    return this.options.store.listAttemptEvents(attempt.id, afterSeq, limit);
  }

  /** Live events of an attempt; the caller must have checked visibility with `attempt`. */
  subscribe(attemptId: string, listener: (event: AttemptEvent) => void): () => void {
    return this.options.runner.subscribe(attemptId, listener);
  }

  async cancel(caller: Caller, taskId: string): Promise<TaskDetail> {
    await this.get(caller, taskId);
    await this.options.runner.cancel(taskId);
    return this.get(caller, taskId);
  }

  async cache(
    caller: Caller,
    environmentName: string,
  ): Promise<{
    environment: StoredEnvironment;
    entries: CacheEntry[];
    sizesBeyondBase: Map<string, number | null>;
    keyNow: Map<string, CurrentKeyInputs>;
  }> {
    const environment = await this.visibleEnvironment(caller, environmentName);
    const entries = await this.options.store.listCacheEntries(environment.id);
    const sizesBeyondBase =
      (await this.options.cacheSizes?.(entries).catch(() => undefined)) ??
      new Map<string, number | null>();
    const keyNow =
      (await this.options.cacheKeyNow?.(environment, entries).catch(() => undefined)) ??
      new Map<string, CurrentKeyInputs>();
    return { environment, entries, sizesBeyondBase, keyNow };
  }

  async resetCache(caller: Caller, environmentName: string): Promise<CacheResetReport> {
    const environment = await this.visibleEnvironment(caller, environmentName);
    const report = await this.options.resetCache(environment.id);
    return typeof report === 'number' ? { removed: report, images: [] } : report;
  }
}

/**
 * Which of `texts` (label → text) and the diff hold a secret value (a line of 4 characters or
 * more, or its encoded forms); the diff by its content (diff-masking.ts: without the line
 * prefixes, in turns of the event loop).
 */
async function secretsIn(
  secrets: Readonly<Record<string, string>>,
  texts: Readonly<Record<string, string>>,
  diff: string,
): Promise<string[]> {
  const masker = new SecretMasker(scanPatterns(Object.values(secrets)));
  if (masker.isEmpty) return [];
  const found = Object.entries(texts)
    .filter(([, text]) => masker.mask(text) !== text)
    .map(([label]) => label);
  if ((await maskStoredDiff(diff, masker)).secretFiles.length > 0) found.push('the diff');
  return found;
}
