import type { AttemptPhase } from './attempt-phase.js';
import type { CommandRecord } from './command-record.js';

/** A file the diff touches; binary files are marked (their patch is a binary patch). */
export interface ChangedFile {
  path: string;
  added: number | null;
  removed: number | null;
  binary: boolean;
}

/** What an attempt hands back. */
export interface AttemptResult {
  /** The commit the attempt started from; the diff is against it. */
  baseCommit: string;
  /** `git diff --binary` of the working tree (new files included, ignored files not). */
  diff: string;
  files: ChangedFile[];
  message: string;
  commands: CommandRecord[];
  /** The image holding the attempt's final state, for follow-ups (removed after a while). */
  snapshotImage: string | null;
  /** Model tokens used by the agent (absent for `--command` tasks). */
  usage?: { promptTokens: number; completionTokens: number };
  /** The environment's `verify` command as Berth ran it after the agent (absent without one). */
  verification?: AttemptVerification;
}

/** The environment's `verify` command, run by Berth in the attempt's sandbox. */
export interface AttemptVerification {
  command: string;
  exitCode: number;
  /** stdout and stderr interleaved, secret values masked, bounded. */
  output: string;
  /** Exit code 0 and not timed out. A failed verification does not fail the attempt. */
  passed: boolean;
  durationMs: number;
  timedOut: boolean;
}

/** Why an attempt failed, in words a user can act on. */
export interface AttemptError {
  code: string;
  message: string;
  details: Record<string, unknown>;
}

export interface Attempt {
  id: string;
  taskId: string;
  /** 0-based position among the task's attempts. */
  index: number;
  phase: AttemptPhase;
  /** Whether the sandbox started from a cache entry (null until known). */
  cacheHit: boolean | null;
  error: AttemptError | null;
  result: AttemptResult | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** The attempt's status as a user sees it: its phase once terminal, else running or queued. */
export type AttemptStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export function attemptStatus(phase: AttemptPhase): AttemptStatus {
  switch (phase) {
    case 'queued':
      return 'queued';
    case 'succeeded':
    case 'failed':
    case 'cancelled':
      return phase;
    default:
      return 'running';
  }
}
