/**
 * The events the agent adds to an attempt's log. They are meant to join `AttemptEventBody`
 * (src/domain/task/attempt-event.ts); until the lifecycle's formatters handle them, they live here
 * and `agentEventSink` hands them to the attempt's `emit`.
 */
export type PlanStep = { step: string; status: 'pending' | 'in_progress' | 'completed' };

export type AgentEventBody =
  /** One answer of the model; `content` bounded. */
  | {
      type: 'agent_turn';
      turn: number;
      content: string | null;
      toolCalls: number;
      finishReason: string;
      durationMs: number;
    }
  /** A tool call the model made; `arguments` is its raw JSON text, bounded. */
  | { type: 'tool_call'; turn: number; callId: string; tool: string; arguments: string }
  /** What the agent answered to a tool call; `output` is what the model was told, bounded. */
  | {
      type: 'tool_result';
      turn: number;
      callId: string;
      tool: string;
      ok: boolean;
      output: string;
      durationMs: number;
      exitCode?: number;
      timedOut?: boolean;
    }
  /** The agent's plan (`update_plan`). */
  | { type: 'plan'; plan: PlanStep[]; explanation?: string }
  /** Tokens of one model turn and the attempt's totals so far. */
  | {
      type: 'usage';
      turn: number;
      promptTokens: number;
      completionTokens: number;
      totalPromptTokens: number;
      totalCompletionTokens: number;
      estimated?: boolean;
    }
  /** Why the loop ended: `completed` (the model answered) or the limit or fault that ended it. */
  | { type: 'agent_end'; reason: string; turns: number; message: string };
