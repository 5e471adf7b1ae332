import { attemptStatus, type Attempt, type AttemptStatus } from './attempt.js';
import type { StatusWord } from './status-words.js';

/** The task's status as a user sees it (status-words.ts), from its attempts (taskStatusOfTurns). */
export type TaskStatus = StatusWord;

/** Where the attempt's repository is checked out: the environment's default branch unless given. */
export interface TaskRef {
  branch?: string;
  sha?: string;
}

/** What a task may choose for its agent, over the environment's and the server's settings. */
export interface TaskAgentOptions {
  model?: string;
  limits?: { maxTurns?: number; wallTimeMs?: number; maxTokens?: number };
  /** The environment's `verify` is not run (`berth env test`: up to lockdown and the command). */
  skipVerify?: boolean;
  /**
   * A read-only task (`@berth review`): the agent phase runs with the internet off whatever the
   * environment allows, and nothing of it is pushed (docs/github.md).
   */
  readOnly?: boolean;
  /**
   * Setup and maintenance run without the environment's secrets (a pull request from a fork:
   * its code is the fork author's). Host-side git credentials still fetch the repository.
   */
  withoutSecrets?: boolean;
}

/** One request against one environment, with N independent attempts. */
export interface Task {
  id: string;
  environmentId: string;
  /** What the agent is asked to do; empty when only a command is run. */
  prompt: string;
  /** A command run as the agent phase (`berth exec --command`), instead of the agent. */
  command: string | null;
  ref: TaskRef;
  /** A repository location replacing the environment's (`berth run --repo`). */
  repository: string | null;
  attemptCount: number;
  /** The attempt chosen with `berth task pick` (null until one is; a lone attempt is picked by default). */
  /** The agent's model and limits for this task (the environment's and server's otherwise). */
  agent?: TaskAgentOptions | null;
  pickedAttemptId?: string | null;
  /** The name of the token that submitted the task (null for tasks stored before it was kept). */
  createdBy?: string | null;
  status: TaskStatus;
  createdAt: string;
  updatedAt: string;
}

/**
 * The task's status from its attempts' statuses: running while any attempt is live, succeeded
 * when every attempt succeeded, cancelled when all were cancelled, otherwise failed.
 */
export function taskStatusOf(attempts: readonly AttemptStatus[]): TaskStatus {
  if (attempts.length === 0) return 'queued';
  if (attempts.every((s) => s === 'queued')) return 'queued';
  if (attempts.some((s) => s === 'queued' || s === 'running')) return 'running';
  if (attempts.every((s) => s === 'succeeded')) return 'succeeded';
  if (attempts.every((s) => s === 'cancelled')) return 'cancelled';
  return 'failed';
}

/**
 * The task's status from its latest turn. A turn is the task's own N attempts (the first turn) or
 * one follow-up attempt; the latest is the follow-up with the highest index, else the first turn.
 * - While an attempt of an earlier turn is still queued or running, the task is `running`.
 * - Otherwise the latest turn decides, by `taskStatusOf` over its attempts: a follow-up that
 *   succeeded makes the task `succeeded` whatever earlier turns did (a failed best-of-N attempt,
 *   a failed earlier follow-up), and one that failed makes it `failed`; earlier turns stay on the
 *   task as they ended.
 */
export function taskStatusOfTurns(
  attempts: readonly Pick<Attempt, 'index' | 'phase' | 'followUp'>[],
): TaskStatus {
  const followUps = attempts.filter((a) => a.followUp);
  const last = followUps.reduce<(typeof attempts)[number] | undefined>(
    (latest, a) => (latest === undefined || a.index > latest.index ? a : latest),
    undefined,
  );
  const latest = last ? [last] : attempts.filter((a) => !a.followUp);
  const earlier = attempts.filter((a) => !latest.includes(a));
  const live = (a: (typeof attempts)[number]) => {
    const status = attemptStatus(a.phase);
    return status === 'queued' || status === 'running';
  };
  if (earlier.some(live)) return 'running';
  return taskStatusOf(latest.map((a) => attemptStatus(a.phase)));
}
