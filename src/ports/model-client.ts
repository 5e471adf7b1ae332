/**
 * The model port: one chat-completion turn with tools. Adapter (not built yet, see issue 6):
 * `OpenAiCompatibleModel` for any OpenAI-compatible Chat Completions API.
 */

export interface ToolDefinition {
  name: string;
  description: string;
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

export interface ModelUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface ModelTurn {
  message: Extract<ChatMessage, { role: 'assistant' }>;
  usage: ModelUsage;
  finishReason: string;
}

export interface ModelClient {
  complete(
    request: { model?: string; messages: ChatMessage[]; tools: ToolDefinition[] },
    options: { signal?: AbortSignal; onDelta?: (text: string) => void },
  ): Promise<ModelTurn>;
}
