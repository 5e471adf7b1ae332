import { BerthError } from '../../errors/berth-error.js';
import type {
  AssistantMessage,
  ChatMessage,
  ModelCallOptions,
  ModelClient,
  ModelRequest,
  ModelTurn,
  ModelUsage,
  ToolCall,
} from '../../ports/model-client.js';
import { readServerSentEvents } from './server-sent-events.js';

/**
 * A `ModelClient` for any OpenAI-compatible Chat Completions API, over `fetch` (no SDK).
 *
 * Threat model: the API key is a credential of the orchestrator. It is sent only in the
 * Authorization header to the configured base URL, never put into a message, an error or an
 * event. Everything the API answers is untrusted input: it is parsed defensively and a malformed
 * answer is an error, never a crash.
 */

export interface OpenAiCompatibleModelOptions {
  /** For example `https://api.example/v1`; `/chat/completions` is appended. */
  baseUrl: string;
  apiKey?: string;
  model: string;
  /** Stream the answer (SSE). Default true. */
  stream?: boolean;
  /** Time for one HTTP request, the whole streamed answer included. Default 10 minutes. */
  timeoutMs?: number;
  /** Retries after a 429, a 5xx, a network error, a timeout or a malformed answer. Default 4. */
  maxRetries?: number;
  /** First backoff delay; doubles each retry, with jitter. Default 500 ms. */
  retryBaseMs?: number;
  /** Cap on one backoff delay (Retry-After included). Default 30 s. */
  maxRetryDelayMs?: number;
  /** Extra body fields (for example `temperature`). */
  extraBody?: Record<string, unknown>;
  fetch?: typeof fetch;
}

interface WireToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

type WireMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: WireToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

/** A failure worth another try (429, 5xx, network, timeout, malformed answer). */
class RetryableFailure extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    readonly isTimeout = false,
  ) {
    super(message);
  }
}

const MAX_ERROR_TEXT = 500;

export class OpenAiCompatibleModel implements ModelClient {
  private readonly url: string;
  private readonly stream: boolean;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly fetchImpl: typeof fetch;
  /** Whether to ask for usage in the stream; turned off when the server refuses the option. */
  private streamUsage = true;
  /** Kept in an ES private field so that logging the client never prints the key. */
  readonly #authorization: string | undefined;
  private readonly options: Omit<OpenAiCompatibleModelOptions, 'apiKey'>;

  constructor(options: OpenAiCompatibleModelOptions) {
    const { apiKey, ...rest } = options;
    this.options = rest;
    this.#authorization = apiKey ? `Bearer ${apiKey}` : undefined;
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new BerthError('invalid_input', `the model base URL is not a URL: ${options.baseUrl}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new BerthError(
        'invalid_input',
        `the model base URL must be http or https: ${options.baseUrl}`,
      );
    }
    if (options.model.trim() === '')
      throw new BerthError('invalid_input', 'no model name is configured');
    this.url = `${options.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    this.stream = options.stream ?? true;
    this.timeoutMs = options.timeoutMs ?? 600_000;
    this.maxRetries = options.maxRetries ?? 4;
    this.retryBaseMs = options.retryBaseMs ?? 500;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  get model(): string {
    return this.options.model;
  }

  async complete(request: ModelRequest, options: ModelCallOptions = {}): Promise<ModelTurn> {
    try {
      return await this.completeWith(request, options, this.streamUsage);
    } catch (error) {
      // Some servers (older vLLM and proxies) refuse stream_options: ask once more without it,
      // and remember.
      if (
        this.streamUsage &&
        error instanceof BerthError &&
        error.code === 'model_error' &&
        error.details.status === 400 &&
        error.message.includes('stream_options')
      ) {
        this.streamUsage = false;
        return this.completeWith(request, options, false);
      }
      throw error;
    }
  }

  private async completeWith(
    request: ModelRequest,
    options: ModelCallOptions,
    streamUsage: boolean,
  ): Promise<ModelTurn> {
    const body = JSON.stringify({
      ...this.options.extraBody,
      model: request.model ?? this.options.model,
      messages: request.messages.map(toWire),
      ...(request.tools.length > 0
        ? {
            tools: request.tools.map((t) => ({
              type: 'function',
              function: { name: t.name, description: t.description, parameters: t.parameters },
            })),
          }
        : {}),
      stream: this.stream,
      ...(this.stream && streamUsage ? { stream_options: { include_usage: true } } : {}),
    });
    for (let attempt = 0; ; attempt += 1) {
      throwIfCancelled(options.signal);
      try {
        const turn = await this.once(body, options);
        if (turn.usage.estimated) {
          turn.usage = { ...estimateUsage(body, turn.message), estimated: true };
        }
        return turn;
      } catch (error) {
        if (!(error instanceof RetryableFailure)) throw error;
        if (attempt >= this.maxRetries) {
          const tries = `${attempt + 1} ${attempt === 0 ? 'try' : 'tries'}`;
          if (error.isTimeout) {
            throw new BerthError(
              'timeout',
              `the model API did not answer within ${this.timeoutMs} ms (${tries})`,
              {
                url: this.url,
              },
            );
          }
          throw new BerthError(
            'model_error',
            `the model API failed after ${tries}: ${error.message}`,
            { url: this.url },
          );
        }
        const delayMs = this.backoff(attempt, error.retryAfterMs);
        options.onRetry?.({ attempt: attempt + 1, delayMs, reason: error.message });
        await sleep(delayMs, options.signal);
      }
    }
  }

  private backoff(attempt: number, retryAfterMs: number | undefined): number {
    if (retryAfterMs !== undefined)
      return Math.min(this.maxRetryDelayMs, Math.max(0, retryAfterMs));
    const exponential = Math.min(this.maxRetryDelayMs, this.retryBaseMs * 2 ** attempt);
    return Math.round(exponential * (0.5 + Math.random() * 0.5));
  }

  private async once(body: string, options: ModelCallOptions): Promise<ModelTurn> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.timeoutMs);
    const signal = options.signal
      ? AbortSignal.any([options.signal, timeout.signal])
      : timeout.signal;
    const failure = (error: unknown): unknown => {
      if (options.signal?.aborted) return cancelled(options.signal);
      if (timeout.signal.aborted)
        return new RetryableFailure(`no answer within ${this.timeoutMs} ms`, undefined, true);
      if (error instanceof BerthError || error instanceof RetryableFailure) return error;
      return new RetryableFailure(networkReason(error));
    };
    try {
      let response: Response;
      try {
        response = await this.fetchImpl(this.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: this.stream ? 'text/event-stream' : 'application/json',
            ...(this.#authorization !== undefined ? { authorization: this.#authorization } : {}),
          },
          body,
          signal,
        });
      } catch (error) {
        throw failure(error);
      }
      if (!response.ok) {
        const text = await response.text().catch(() => '');
        const reason = `HTTP ${response.status}${apiMessage(text) ? `: ${apiMessage(text)}` : ''}`;
        if (response.status === 429 || response.status >= 500) {
          throw new RetryableFailure(reason, retryAfter(response.headers));
        }
        throw new BerthError('model_error', `the model API refused the request with ${reason}`, {
          status: response.status,
          url: this.url,
        });
      }
      try {
        const type = response.headers.get('content-type') ?? '';
        if (this.stream && type.includes('text/event-stream') && response.body) {
          return await readStream(response.body, options.onDelta);
        }
        return parseCompletion(await response.text());
      } catch (error) {
        throw failure(error);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

function toWire(message: ChatMessage): WireMessage {
  switch (message.role) {
    case 'system':
    case 'user':
      return { role: message.role, content: message.content };
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls && message.toolCalls.length > 0
          ? {
              tool_calls: message.toolCalls.map((c) => ({
                id: c.id,
                type: 'function' as const,
                function: { name: c.name, arguments: c.arguments },
              })),
            }
          : {}),
      };
  }
}

interface PartialCall {
  id: string;
  name: string;
  arguments: string;
}

/** Reads an SSE Chat Completions stream, assembling content and tool-call deltas by index. */
async function readStream(
  body: ReadableStream<Uint8Array>,
  onDelta?: (text: string) => void,
): Promise<ModelTurn> {
  let content = '';
  let sawContent = false;
  const calls = new Map<number, PartialCall>();
  let finishReason: string | undefined;
  let usage: ModelUsage | undefined;
  let done = false;
  for await (const data of readServerSentEvents(body)) {
    if (data === '[DONE]') {
      done = true;
      break;
    }
    const chunk = parseJson(data, 'a stream chunk');
    const error = record(chunk.error);
    if (error)
      throw new BerthError(
        'model_error',
        `the model API reported an error mid-stream: ${errorText(error)}`,
      );
    const chunkUsage = readUsage(chunk.usage);
    if (chunkUsage) usage = chunkUsage;
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    const choice = record(choices[0]);
    if (!choice) continue;
    const delta = record(choice.delta) ?? {};
    if (typeof delta.content === 'string' && delta.content !== '') {
      content += delta.content;
      sawContent = true;
      onDelta?.(delta.content);
    }
    if (Array.isArray(delta.tool_calls)) {
      delta.tool_calls.forEach((raw, position) => {
        const part = record(raw);
        if (!part) return;
        const id = typeof part.id === 'string' && part.id !== '' ? part.id : undefined;
        let index = typeof part.index === 'number' ? part.index : position;
        // Without an index, a new id at a known position is a new call (servers that send
        // whole calls one chunk each).
        const known = calls.get(index);
        if (
          typeof part.index !== 'number' &&
          known &&
          id !== undefined &&
          known.id !== '' &&
          known.id !== id
        ) {
          index = Math.max(...calls.keys()) + 1;
        }
        const fn = record(part.function) ?? {};
        const call = calls.get(index) ?? { id: '', name: '', arguments: '' };
        if (id !== undefined) call.id = id;
        // A name comes whole in the first delta; some servers repeat it in later ones.
        if (typeof fn.name === 'string' && fn.name !== call.name) call.name += fn.name;
        if (typeof fn.arguments === 'string') call.arguments += fn.arguments;
        else if (fn.arguments !== undefined && fn.arguments !== null)
          call.arguments += JSON.stringify(fn.arguments);
        calls.set(index, call);
      });
    }
    if (typeof choice.finish_reason === 'string') finishReason = choice.finish_reason;
  }
  if (!done && finishReason === undefined)
    throw new RetryableFailure('the answer stream ended early');
  const toolCalls = [...calls.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, c]): ToolCall => ({
      id: c.id || `call_${index}`,
      name: c.name,
      arguments: c.arguments,
    }));
  return turnOf(sawContent ? content : null, toolCalls, finishReason, usage);
}

function parseCompletion(text: string): ModelTurn {
  const body = parseJson(text, 'the answer');
  const error = record(body.error);
  if (error)
    throw new BerthError('model_error', `the model API reported an error: ${errorText(error)}`);
  const choices = Array.isArray(body.choices) ? body.choices : [];
  const choice = record(choices[0]);
  const message = record(choice?.message);
  if (!choice || !message) throw new RetryableFailure('the answer has no choices[0].message');
  const rawCalls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  const toolCalls = rawCalls.flatMap((raw, index): ToolCall[] => {
    const call = record(raw);
    const fn = record(call?.function);
    if (!call || !fn || typeof fn.name !== 'string') return [];
    const args =
      typeof fn.arguments === 'string' ? fn.arguments : JSON.stringify(fn.arguments ?? {});
    return [
      {
        id: typeof call.id === 'string' && call.id !== '' ? call.id : `call_${index}`,
        name: fn.name,
        arguments: args,
      },
    ];
  });
  const content = typeof message.content === 'string' ? message.content : null;
  return turnOf(
    content,
    toolCalls,
    typeof choice.finish_reason === 'string' ? choice.finish_reason : undefined,
    readUsage(body.usage),
  );
}

function turnOf(
  content: string | null,
  toolCalls: ToolCall[],
  finishReason: string | undefined,
  usage: ModelUsage | undefined,
): ModelTurn {
  const message: AssistantMessage = {
    role: 'assistant',
    content,
    ...(toolCalls.length > 0 ? { toolCalls } : {}),
  };
  return {
    message,
    usage: usage ?? { promptTokens: 0, completionTokens: 0, estimated: true },
    finishReason: finishReason ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop'),
  };
}

function readUsage(value: unknown): ModelUsage | undefined {
  const usage = record(value);
  if (!usage) return undefined;
  const prompt = usage.prompt_tokens;
  const completion = usage.completion_tokens;
  if (typeof prompt !== 'number' || typeof completion !== 'number') return undefined;
  return { promptTokens: prompt, completionTokens: completion };
}

/** About four characters per token: enough for limits when an API reports no usage. */
function estimateUsage(requestBody: string, message: AssistantMessage): ModelUsage {
  const completion =
    (message.content ?? '').length +
    (message.toolCalls ?? []).reduce((n, c) => n + c.name.length + c.arguments.length, 0);
  return {
    promptTokens: Math.ceil(requestBody.length / 4),
    completionTokens: Math.ceil(completion / 4),
  };
}

function parseJson(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RetryableFailure(`${what} is not JSON: ${clip(text, 80)}`);
  }
  const object = record(value);
  if (!object) throw new RetryableFailure(`${what} is not a JSON object: ${clip(text, 80)}`);
  return object;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function errorText(error: Record<string, unknown>): string {
  return clip(
    typeof error.message === 'string' ? error.message : JSON.stringify(error),
    MAX_ERROR_TEXT,
  );
}

/** The API's own message from an error body (`{ "error": { "message": … } }`), else the text. */
function apiMessage(text: string): string {
  try {
    const error = record(record(JSON.parse(text))?.error);
    if (error && typeof error.message === 'string') return clip(error.message, MAX_ERROR_TEXT);
    const detail = record(JSON.parse(text))?.detail;
    if (typeof detail === 'string') return clip(detail, MAX_ERROR_TEXT);
  } catch {
    // not JSON: the text itself
  }
  return clip(text.trim(), MAX_ERROR_TEXT);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date. */
function retryAfter(headers: Headers): number | undefined {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.has('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  if (value.trim() !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function networkReason(error: unknown): string {
  const cause =
    error instanceof Error
      ? (error.cause as { code?: unknown; message?: unknown } | undefined)
      : undefined;
  if (cause && typeof cause.code === 'string') return `network error (${cause.code})`;
  if (cause && typeof cause.message === 'string') return `network error (${cause.message})`;
  return `network error (${error instanceof Error ? error.message : String(error)})`;
}

function cancelled(signal: AbortSignal): BerthError {
  const reason: unknown = signal.reason;
  if (reason instanceof BerthError) return reason;
  return new BerthError('cancelled', 'the model request was cancelled', {}, { cause: reason });
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelled(signal);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(cancelled(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelled(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
