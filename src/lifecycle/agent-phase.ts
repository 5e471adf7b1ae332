import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { CommandRecord } from '../domain/task/command-record.js';

/**
 * The agent seam (DESIGN §2 step 5): what runs after lockdown. The model-driven agent implements
 * it; `CommandAgent` runs one given command. Either way every command goes through `exec`, which
 * runs it in the sandbox (login bash, workspace, the environment's variables and the replayed
 * exports, never the secrets) and records it in the results.
 */
export interface AgentContext {
  attemptId: string;
  prompt: string;
  workdir: string;
  exec(command: string, options?: { timeoutMs?: number }): Promise<CommandRecord>;
  emit(event: AttemptEventBody): void;
  signal: AbortSignal;
}

export interface AgentOutcome {
  /** The final message shown to the user. */
  message: string;
  /** False when the agent could not do what it was asked (the attempt then fails, with results). */
  succeeded: boolean;
}

export interface AgentPhase {
  run(context: AgentContext): Promise<AgentOutcome>;
}
