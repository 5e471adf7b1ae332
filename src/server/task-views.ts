import type { CacheEntry } from '../domain/cache/cache-entry.js';
import { staleCacheParts, type CurrentKeyInputs } from '../domain/cache/cache-staleness.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import type { z } from 'zod';
import { attemptStatus, type Attempt } from '../domain/task/attempt.js';
import type {
  attemptSummary as attemptSummarySchema,
  AttemptViewBody,
  TaskViewBody,
  cacheEntryView as cacheEntrySchema,
} from './api-schemas.js';
import { taskStatusOfTurns, type Task } from '../domain/task/task.js';

/**
 * How tasks and attempts are shown, in one place for the API, `berth run --json` and the CLI.
 * The names `id`, `status`, `diff`, `message`, `error`, `commands[].command|exitCode|output` are
 * a contract (issue 4).
 */

export type AttemptView = AttemptViewBody;
export type TaskView = TaskViewBody;

export function attemptView(attempt: Attempt): AttemptView {
  const files = attempt.result?.files ?? [];
  const usage = attempt.result?.usage;
  const started = attempt.startedAt ? Date.parse(attempt.startedAt) : NaN;
  const finished = attempt.finishedAt ? Date.parse(attempt.finishedAt) : NaN;
  return {
    id: attempt.id,
    index: attempt.index,
    status: attemptStatus(attempt.phase),
    phase: attempt.phase,
    cacheHit: attempt.cacheHit,
    diff: attempt.result?.diff ?? '',
    message: attempt.result?.message ?? '',
    error: attempt.error?.message ?? null,
    errorCode: attempt.error?.code ?? null,
    errorDetails: attempt.error?.details ?? null,
    commands: (attempt.result?.commands ?? []).map((c) => ({
      command: c.command,
      exitCode: c.exitCode,
      output: c.output,
      phase: c.phase,
      durationMs: c.durationMs,
      timedOut: c.timedOut,
    })),
    files,
    filesChanged: files.length,
    linesAdded: files.reduce((n, f) => n + (f.added ?? 0), 0),
    linesRemoved: files.reduce((n, f) => n + (f.removed ?? 0), 0),
    baseCommit: attempt.result?.baseCommit ?? null,
    snapshotImage: attempt.result?.snapshotImage ?? null,
    createdAt: attempt.createdAt,
    startedAt: attempt.startedAt,
    finishedAt: attempt.finishedAt,
    durationMs: Number.isFinite(started) && Number.isFinite(finished) ? finished - started : null,
    verification: attempt.result?.verification ?? null,
    followUpOf: attempt.followUp?.parentAttemptId ?? null,
    request: attempt.followUp?.request ?? null,
    turnDiff: attempt.result?.turnDiff ?? null,
    secretFiles: attempt.result?.secretFiles ?? [],
    deniedHosts: attempt.result?.deniedHosts ?? [],
    tokens: usage ? usage.promptTokens + usage.completionTokens : null,
  };
}

export type AttemptSummary = z.output<typeof attemptSummarySchema>;

/** An attempt for the task list: the view without its diffs, outputs, file list and message. */
export function attemptSummary(attempt: Attempt): AttemptSummary {
  const view: Partial<AttemptView> = attemptView(attempt);
  const commandCount = view.commands?.length ?? 0;
  for (const heavy of ['diff', 'turnDiff', 'commands', 'files', 'message'] as const)
    delete view[heavy];
  return { ...(view as AttemptSummaryBase), commandCount };
}

type AttemptSummaryBase = Omit<AttemptSummary, 'commandCount'>;

/** A task for the task list (GET /v1/tasks): its attempts in short. */
export function taskSummary(
  task: Task,
  environmentName: string,
  attempts: readonly Attempt[],
): Omit<TaskView, 'attempts'> & { attempts: AttemptSummary[] } {
  return {
    ...taskView(task, environmentName, []),
    status: attempts.length > 0 ? taskStatusOfTurns(attempts) : task.status,
    picked: pickedAttempt(task, attempts),
    attempts: attempts.map(attemptSummary),
  };
}

/** The picked attempt's id: the one chosen, or the only attempt of a one-attempt task. */
export function pickedAttempt(task: Task, attempts: readonly Attempt[]): string | null {
  if (task.pickedAttemptId) return task.pickedAttemptId;
  return task.attemptCount === 1 ? (attempts[0]?.id ?? null) : null;
}

export function taskView(
  task: Task,
  environmentName: string,
  attempts: readonly Attempt[],
): TaskView {
  return {
    id: task.id,
    environment: environmentName,
    // From the attempts as they are now (the stored status follows them a moment later).
    status: attempts.length > 0 ? taskStatusOfTurns(attempts) : task.status,
    prompt: task.prompt,
    command: task.command,
    branch: task.ref.branch ?? null,
    sha: task.ref.sha ?? null,
    createdBy: task.createdBy ?? null,
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    picked: pickedAttempt(task, attempts),
    attempts: attempts.map(attemptView),
  };
}

export type CacheEntryView = z.output<typeof cacheEntrySchema>;

export function cacheEntryView(
  entry: CacheEntry,
  now: Date,
  spec?: EnvironmentSpec,
  sizeBeyondBaseBytes: number | null = null,
  keyNow: CurrentKeyInputs = {},
): CacheEntryView {
  const live = Date.parse(entry.expiresAt) > now.getTime();
  const staleBecause = spec === undefined ? [] : staleCacheParts(entry.parts, spec, keyNow);
  return {
    id: entry.id,
    key: entry.key,
    image: entry.image,
    imageId: entry.imageId,
    sizeBytes: entry.sizeBytes,
    commit: entry.commit,
    exportNames: entry.exportNames,
    createdAt: entry.createdAt,
    expiresAt: entry.expiresAt,
    ageMs: now.getTime() - Date.parse(entry.createdAt),
    live,
    state: !live ? 'expired' : staleBecause.length > 0 ? 'stale' : 'live',
    staleBecause,
    sizeBeyondBaseBytes,
    parts: {
      baseImage: entry.parts.baseImage,
      repository: entry.parts.repository,
      versions: entry.parts.versions,
      setup: entry.parts.setup,
      maintenance: entry.parts.maintenance,
      env: entry.parts.env,
      // Names only: the digests stay in the store.
      secrets: Object.keys(entry.parts.secrets).sort(),
    },
  };
}
