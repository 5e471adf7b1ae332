import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { CommandRecord } from '../domain/task/command-record.js';
import type { OutputChunk, SandboxRuntime } from '../ports/sandbox-runtime.js';

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
  /**
   * When (epoch ms) the agent should have stopped so that the attempt, within its time limit
   * (`resources.timeoutMs`), still collects the diff and runs its verification.
   */
  deadline?: number;
  /** For the model agent (src/agent), whose tools read and write files: the sandbox itself. */
  runtime?: SandboxRuntime;
  sandboxId?: string;
  /** The agent phase's variables (environment variables, replayed exports, proxy settings; no secrets). */
  env?: Record<string, string>;
  /** Masks secret values in texts the agent logs or sends to the model. */
  mask?: (text: string) => string;
  /** A live-log sink for one command's output, e.g. `() => new PhaseOutput(masker, emit)`. */
  commandOutput?: () => { onOutput(chunk: OutputChunk): void; end(): void };
  /**
   * Watches the egress proxy's denials while one command runs: `end()` gives their lines
   * (`berth egress: … denied: …`), once each, for the command's tool result.
   */
  egressDenials?: () => { end(): string[] };
}

export interface AgentOutcome {
  /** The final message shown to the user. */
  message: string;
  /** False when the agent could not do what it was asked (the attempt then fails, with results). */
  succeeded: boolean;
  /** Commands the agent ran through its own tools (not through `exec`). */
  commands?: CommandRecord[];
  /** Model tokens the agent used. */
  usage?: { promptTokens: number; completionTokens: number };
}

export interface AgentPhase {
  run(context: AgentContext): Promise<AgentOutcome>;
}

/**
 * The agent's deadline within an attempt that started at `startedAt` with the time limit
 * `timeoutMs`: a fifth of the limit (at least 10 s, at most 2 min) is kept for the results (the
 * diff, the snapshot, the verification), so an agent stopped by the attempt's time keeps its diff.
 */
export function agentDeadline(startedAt: number, timeoutMs: number): number {
  const marginMs = Math.min(120_000, Math.max(10_000, Math.round(timeoutMs / 5)));
  return startedAt + Math.max(0, timeoutMs - marginMs);
}
