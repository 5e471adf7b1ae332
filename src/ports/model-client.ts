/**
 * The model port: one chat-completion turn with tools. Adapter: `OpenAiCompatibleModel`
 * (src/adapters/model) for any OpenAI-compatible Chat Completions API (OpenAI, vLLM, Ollama,
 * LiteLLM and the like). The agent loop (src/agent) is its only user.
 */

export interface ToolDefinition {
  name: string;
  description: string;
  /** A JSON Schema object describing the tool's arguments. */
  parameters: Record<string, unknown>;
}

export interface ToolCall {
  id: string;
  name: string;
  /** The raw JSON text the model sent; parsed and validated by the agent. */
  arguments: string;
}

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string };

export type AssistantMessage = Extract<ChatMessage, { role: 'assistant' }>;

export interface ModelUsage {
  promptTokens: number;
  completionTokens: number;
  /** True when the API reported no usage and the numbers are estimated from text lengths. */
  estimated?: boolean;
}

export interface ModelTurn {
  message: AssistantMessage;
  usage: ModelUsage;
  /** `stop`, `tool_calls`, `length`, `content_filter`, or what the API said. */
  finishReason: string;
}

export interface ModelRequest {
  /** Overrides the client's configured model (an environment or a task may choose another). */
  model?: string;
  messages: ChatMessage[];
  tools: ToolDefinition[];
}

export interface ModelRetryInfo {
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  /** What went wrong, for example "HTTP 503: overloaded" or "connection refused". */
  reason: string;
}

export interface ModelCallOptions {
  /** Cancels the request (and any wait between retries). */
  signal?: AbortSignal;
  /** Streamed text as it arrives. */
  onDelta?: (text: string) => void;
  /** Called before each retry, so the caller can log it. */
  onRetry?: (info: ModelRetryInfo) => void;
}

export interface ModelClient {
  /**
   * One turn. Rejects with a BerthError: `model_error` (the API refused, or kept failing after
   * the bounded retries), `timeout` (no answer within the request timeout, retries included),
   * `cancelled` (the signal fired).
   */
  complete(request: ModelRequest, options?: ModelCallOptions): Promise<ModelTurn>;
}
