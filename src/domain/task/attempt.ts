import type { AttemptPhase } from './attempt-phase.js';
import type { CommandRecord } from './command-record.js';
import type { StatusWord } from './status-words.js';
import type { DeniedHost } from '../internet/egress-denial.js';

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
  /** A follow-up turn's own change (against the state it resumed); `diff` stays the whole change. */
  turnDiff?: string;
  /**
   * Files whose part of the diff held a secret value of the environment (names masked): the
   * stored diff has the values masked, and `task apply` and `task pr` refuse it. Empty: none.
   * Absent: a result stored before diffs were checked (task-service.ts checks it when serving).
   */
  secretFiles?: string[];
  /**
   * Hosts the egress proxy denied during the attempt, each with the change to the environment
   * file that would allow it (a suggestion for a person; never applied). Absent: none.
   */
  deniedHosts?: DeniedHost[];
}

/** What makes an attempt a follow-up turn: it continues another attempt from its snapshot. */
export interface AttemptFollowUp {
  /** The attempt this turn continues. */
  parentAttemptId: string;
  /** The follow-up as the user wrote it. */
  request: string;
  /**
   * What the agent is asked when the parent kept no conversation (a `--command` run, an attempt
   * from before conversations were stored): the request, with the earlier turn's prompt and final
   * message. When the parent's conversation is stored, the agent resumes it and is asked `request`.
   */
  prompt: string;
  /** A command run as the agent phase instead (`--command`). */
  command: string | null;
  /** The parent's final state: the sandbox starts from it (no checkout, setup or maintenance). */
  snapshotImage: string;
  /** The original commit: `diff` stays the whole change against it. */
  baseCommit: string;
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
  /** Set on a follow-up turn (absent or null on a task's own attempts). */
  followUp?: AttemptFollowUp | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** The attempt's status as a user sees it (status-words.ts): its phase once terminal, else running or queued. */
export type AttemptStatus = StatusWord;

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
