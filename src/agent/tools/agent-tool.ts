import type { z } from 'zod';
import type { AttemptEventBody } from '../../domain/task/attempt-event.js';
import type { OutputChunk } from '../../ports/sandbox-runtime.js';
import type { AgentEventBody } from '../agent-event.js';
import type { AgentSandbox } from '../agent-sandbox.js';

/** What a tool works with during one call. */
export interface ToolContext {
  sandbox: AgentSandbox;
  signal: AbortSignal;
  emit(event: AttemptEventBody | AgentEventBody): void;
  /** Masks secret values (identity when there are none). */
  mask(text: string): string;
  /** Tells the agent which workspace paths (relative to the root) a call worked on. */
  touched(relativePaths: string[]): void;
  /** Milliseconds left of the attempt's wall time. */
  remainingMs(): number;
  /** A live-log sink for one command's output (masks and emits it), when the caller gives one. */
  commandOutput?: () => CommandOutputSink;
  /** Watches the egress proxy's denials while one command runs, when the sandbox has a proxy. */
  egressDenials?: () => EgressDenialWatch;
}

export interface EgressDenialWatch {
  /** The denial lines (`berth egress: … denied: …`) seen since the watch began, once each. */
  end(): string[];
}

export interface CommandOutputSink {
  onOutput(chunk: OutputChunk): void;
  /** Flushes what is held back; called once when the command ended. */
  end(): void;
}

/** What the model is told, and facts for the log. */
export interface ToolOutcome {
  output: string;
  ok: boolean;
  exitCode?: number;
  timedOut?: boolean;
  /** For `shell`: the command as the results list it. */
  command?: {
    command: string;
    exitCode: number;
    output: string;
    durationMs: number;
    timedOut: boolean;
  };
}

/** A tool the model can call. Its name and arguments are part of Berth's contract (docs/agent.md). */
export interface AgentTool<Args = unknown> {
  name: string;
  description: string;
  schema: z.ZodType<Args>;
  run(args: Args, context: ToolContext): Promise<ToolOutcome>;
}
