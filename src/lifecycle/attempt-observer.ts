import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { AttemptPhase, TerminalPhase } from '../domain/task/attempt-phase.js';
import type { SandboxStats } from '../ports/sandbox-runtime.js';

/**
 * Watches the attempts a scheduler runs, for what is counted about them (src/metrics/ and
 * src/usage/): when each was claimed, every event of its log as it is emitted (phases, cache
 * results, egress decisions), and how it ended with what it used. An observer never changes an
 * attempt: its calls are made after the fact and a failure in it is logged, never raised.
 */

export interface ClaimedAttempt {
  attemptId: string;
  taskId: string;
  /** When the attempt was queued (its task's submission, or the follow-up's request). */
  queuedAt: string;
  claimedAt: string;
}

export interface FinishedAttempt {
  attemptId: string;
  taskId: string;
  environmentId: string;
  createdBy: string | null;
  outcome: TerminalPhase;
  /** The last phase it was in before it ended (where a failure happened). */
  lastPhase: AttemptPhase;
  claimedAt: string;
  finishedAt: string;
  /** The model's tokens, when a model agent ran. */
  tokens?: { input: number; output: number };
  /** What the sandbox used, when the engine's figures could be read. */
  sandbox?: SandboxStats;
}

export interface AttemptObserver {
  claimed?(attempt: ClaimedAttempt): void;
  event?(attemptId: string, event: AttemptEventBody): void;
  finished?(attempt: FinishedAttempt): void | Promise<void>;
}
