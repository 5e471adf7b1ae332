import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { CommandRecord } from '../domain/task/command-record.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { ChatMessage, ModelClient, ModelTurn, ToolCall } from '../ports/model-client.js';
import type { AgentEventBody } from './agent-event.js';
import type { AgentSandbox } from './agent-sandbox.js';
import { AgentsMd } from './agents-md.js';
import { cutMiddle } from './cut-middle.js';
import { agentsMdMessage, systemPrompt, type AgentEnvironmentInfo } from './system-prompt.js';
import type {
  CommandOutputSink,
  EgressDenialWatch,
  ToolContext,
  ToolOutcome,
} from './tools/agent-tool.js';
import { ToolBox } from './tools/tool-box.js';

export interface AgentLimits {
  /** Model turns per attempt. */
  maxTurns: number;
  /** Wall time of the whole loop, commands included. */
  wallTimeMs: number;
  /** Prompt plus completion tokens over all turns. */
  maxTokens: number;
  /** The same tool call (name and arguments) this many times in a row ends the loop. */
  loopRepeats: number;
}

export const DEFAULT_AGENT_LIMITS: AgentLimits = {
  maxTurns: 50,
  wallTimeMs: 30 * 60_000,
  maxTokens: 2_000_000,
  loopRepeats: 4,
};

export type AgentLimitsOverride = { [K in keyof AgentLimits]?: AgentLimits[K] | undefined };

/** Limits layered: defaults, then each override in order (undefined values skipped). */
export function mergeAgentLimits(...overrides: (AgentLimitsOverride | undefined)[]): AgentLimits {
  const limits = { ...DEFAULT_AGENT_LIMITS };
  for (const override of overrides) {
    for (const key of Object.keys(limits) as (keyof AgentLimits)[]) {
      const value = override?.[key];
      if (value !== undefined) limits[key] = value;
    }
  }
  return limits;
}

export type AgentStopReason =
  'completed' | 'max_turns' | 'wall_time' | 'attempt_time' | 'max_tokens' | 'loop' | 'model_error';

export interface AgentLoopInput {
  model: ModelClient;
  /** The model to ask, when an environment or a task chose another than the client's default. */
  modelName?: string;
  sandbox: AgentSandbox;
  prompt: string;
  environment?: AgentEnvironmentInfo;
  /** Per-server or per-task limits; a missing (or undefined) one takes its default. */
  limits?: AgentLimitsOverride;
  emit: (event: AttemptEventBody | AgentEventBody) => void;
  /** Masks secret values in everything the agent logs or sends to the model. */
  mask?: (text: string) => string;
  /** A live-log sink per command (the lifecycle's PhaseOutput); without it, only results are logged. */
  commandOutput?: () => CommandOutputSink;
  /** The egress proxy's denials during one command (the lifecycle's log of the attempt's denials). */
  egressDenials?: () => EgressDenialWatch;
  signal: AbortSignal;
  /**
   * When (epoch ms) the loop must have ended for its attempt to collect the results in time (the
   * environment's `resources.timeoutMs`, less a margin): the agent's wall time is cut to it, and
   * when it is what ends the loop the stop reason is `attempt_time`.
   */
  deadline?: number;
  tools?: ToolBox;
  /**
   * The conversation of an earlier turn of the task (a follow-up continues it): its messages after
   * the system prompt, which is replaced by a fresh one; the new prompt comes after them.
   */
  history?: ChatMessage[];
}

export interface AgentLoopResult {
  /** The model's final answer, or what ended the loop and the model's last words. */
  message: string;
  succeeded: boolean;
  stopReason: AgentStopReason;
  turns: number;
  usage: { promptTokens: number; completionTokens: number };
  /** The `shell` commands run, as the results list them. */
  commands: CommandRecord[];
  /** The whole conversation, for a follow-up. */
  messages: ChatMessage[];
}

/** Bound on texts in events (content, arguments, tool output). */
export const EVENT_TEXT_MAX_CHARS = 4000;

/**
 * The agent loop (DESIGN §2 step 5): sends the conversation and the tools to the model, runs the
 * tool calls it answers with in the sandbox, appends their results, and repeats until the model
 * answers without a tool call (its answer is the final message) or a limit ends it: turns, wall
 * time, tokens, the same call repeated, or a model API that keeps failing. A limit ends the loop
 * cleanly, with what exists, and says which one it was. Cancelling (the signal) stops the model
 * request and the running command and rejects with the signal's reason.
 */
export async function runAgentLoop(input: AgentLoopInput): Promise<AgentLoopResult> {
  const limits = mergeAgentLimits(input.limits);
  const mask = input.mask ?? ((text: string) => text);
  const tools = input.tools ?? new ToolBox();
  const definitions = tools.definitions();
  const started = Date.now();
  // The attempt's own time limit, when nearer than the agent's wall time, ends the loop first.
  const attemptBound = input.deadline !== undefined && input.deadline < started + limits.wallTimeMs;
  const deadline = attemptBound ? (input.deadline ?? 0) : started + limits.wallTimeMs;
  const emit = input.emit;
  const timeUp = (): AgentLoopResult =>
    attemptBound
      ? finish(
          'attempt_time',
          "Stopped: the attempt's time limit (the environment's resources.timeoutMs) was near; the agent stopped with what it had, leaving time to collect the results.",
        )
      : finish('wall_time', wallTimeText(limits));

  // The wall clock aborts whatever runs when it expires; the caller's signal cancels.
  const wall = new AbortController();
  const wallTimer = setTimeout(
    () => wall.abort(new BerthError('timeout', 'the agent wall time is over')),
    Math.max(0, deadline - started),
  );
  const signal = AbortSignal.any([input.signal, wall.signal]);
  const checkCancelled = (): void => {
    if (input.signal.aborted) throw cancelledError(input.signal);
  };

  const usage = { promptTokens: 0, completionTokens: 0 };
  const commands: CommandRecord[] = [];
  let turns = 0;
  let lastContent: string | null = null;
  let repeatKey = '';
  let repeats = 0;

  const finish = (stopReason: AgentStopReason, detail: string): AgentLoopResult => {
    const succeeded = stopReason === 'completed';
    const message = succeeded
      ? detail
      : `${detail}${lastContent !== null && lastContent.trim() !== '' ? `\n\nThe agent's last words: ${lastContent.trim()}` : ''}`;
    closeOpenToolCalls(messages);
    emit({
      type: 'agent_end',
      reason: stopReason,
      turns,
      message: cutMiddle(mask(message), EVENT_TEXT_MAX_CHARS),
    });
    return {
      message: mask(message),
      succeeded,
      stopReason,
      turns,
      usage: { ...usage },
      commands,
      messages,
    };
  };

  const messages: ChatMessage[] = [];
  try {
    const agentsMd = await AgentsMd.discover(input.sandbox, signal);
    // The system prompt is made afresh (AGENTS.md and the environment may have changed since an
    // earlier turn); a follow-up's earlier conversation follows it without its own system prompt.
    messages.push({
      role: 'system',
      content: mask(
        systemPrompt({
          workdir: input.sandbox.workdir,
          agentsMd,
          ...(input.environment ? { environment: input.environment } : {}),
        }),
      ),
    });
    messages.push(...(input.history ?? []).filter((m) => m.role !== 'system'));
    messages.push({ role: 'user', content: input.prompt });

    for (;;) {
      checkCancelled();
      if (turns >= limits.maxTurns)
        return finish(
          'max_turns',
          `Stopped: the limit of ${limits.maxTurns} model turns was reached before the agent finished.`,
        );
      if (Date.now() >= deadline || wall.signal.aborted) return timeUp();
      if (usage.promptTokens + usage.completionTokens >= limits.maxTokens) {
        return finish(
          'max_tokens',
          `Stopped: the limit of ${limits.maxTokens} tokens was reached (${usage.promptTokens + usage.completionTokens} used).`,
        );
      }

      turns += 1;
      const turnStarted = Date.now();
      let turn: ModelTurn;
      try {
        turn = await input.model.complete(
          {
            ...(input.modelName !== undefined ? { model: input.modelName } : {}),
            messages,
            tools: definitions,
          },
          {
            signal,
            onRetry: (retry) =>
              emit({
                type: 'warning',
                message: `the model API failed (${mask(retry.reason)}); retry ${retry.attempt} in ${retry.delayMs} ms`,
                details: { turn: turns, retry: retry.attempt, delayMs: retry.delayMs },
              }),
          },
        );
      } catch (error) {
        checkCancelled();
        if (wall.signal.aborted) return timeUp();
        const failure = toBerthError(error);
        emit({
          type: 'error',
          code: failure.code,
          message: mask(failure.message),
          details: { turn: turns },
        });
        return finish('model_error', `Stopped: ${failure.message}`);
      }

      usage.promptTokens += turn.usage.promptTokens;
      usage.completionTokens += turn.usage.completionTokens;
      const calls = turn.message.toolCalls ?? [];
      emit({
        type: 'agent_turn',
        turn: turns,
        content:
          turn.message.content === null
            ? null
            : cutMiddle(mask(turn.message.content), EVENT_TEXT_MAX_CHARS),
        toolCalls: calls.length,
        finishReason: turn.finishReason,
        durationMs: Date.now() - turnStarted,
      });
      emit({
        type: 'usage',
        turn: turns,
        promptTokens: turn.usage.promptTokens,
        completionTokens: turn.usage.completionTokens,
        totalPromptTokens: usage.promptTokens,
        totalCompletionTokens: usage.completionTokens,
        ...(turn.usage.estimated ? { estimated: true } : {}),
      });
      messages.push(turn.message);
      if (turn.message.content !== null && turn.message.content.trim() !== '')
        lastContent = turn.message.content;

      if (calls.length === 0) {
        if (turn.finishReason === 'length' && (turn.message.content ?? '').trim() === '') {
          return finish(
            'max_tokens',
            'Stopped: the model ran out of output tokens without an answer.',
          );
        }
        const answer = turn.message.content?.trim() ?? '';
        return finish(
          'completed',
          answer !== '' ? answer : 'The agent finished without a final message.',
        );
      }

      const touched: string[] = [];
      let stop: AgentLoopResult | undefined;
      for (const call of calls) {
        // Once stopped, finish() has answered the remaining calls with "Not run".
        if (stop) continue;
        const key = `${call.name}\u0000${canonicalArguments(call.arguments)}`;
        repeats = key === repeatKey ? repeats + 1 : 1;
        repeatKey = key;
        emit({
          type: 'tool_call',
          turn: turns,
          callId: call.id,
          tool: call.name,
          arguments: cutMiddle(mask(call.arguments), EVENT_TEXT_MAX_CHARS),
        });
        if (repeats >= limits.loopRepeats) {
          const text = `Not run: the same ${call.name} call came ${repeats} times in a row.`;
          messages.push({ role: 'tool', toolCallId: call.id, content: text });
          emit({
            type: 'tool_result',
            turn: turns,
            callId: call.id,
            tool: call.name,
            ok: false,
            output: text,
            durationMs: 0,
          });
          stop = finish(
            'loop',
            `Stopped: the agent repeated the same ${call.name} call ${repeats} times in a row (${cutMiddle(mask(call.arguments), 300)}).`,
          );
          continue;
        }
        const outcome = await runTool(tools, call, turns, {
          input,
          signal,
          mask,
          touched,
          deadline,
          commands,
        });
        messages.push({ role: 'tool', toolCallId: call.id, content: outcome.output });
        if (wall.signal.aborted && !input.signal.aborted) stop = timeUp();
      }
      if (stop) return stop;

      if (touched.length > 0) {
        const files = await agentsMd.forPaths(touched);
        if (files.length > 0)
          messages.push({ role: 'user', content: mask(agentsMdMessage(files)) });
      }
    }
  } catch (error) {
    if (input.signal.aborted) throw cancelledError(input.signal);
    if (wall.signal.aborted) return timeUp();
    throw error;
  } finally {
    clearTimeout(wallTimer);
  }
}

async function runTool(
  tools: ToolBox,
  call: ToolCall,
  turn: number,
  state: {
    input: AgentLoopInput;
    signal: AbortSignal;
    mask: (text: string) => string;
    touched: string[];
    deadline: number;
    commands: CommandRecord[];
  },
): Promise<ToolOutcome> {
  const { input, signal, mask } = state;
  const context: ToolContext = {
    sandbox: input.sandbox,
    signal,
    emit: input.emit,
    mask,
    touched: (paths) => state.touched.push(...paths),
    remainingMs: () => Math.max(0, state.deadline - Date.now()),
    ...(input.commandOutput ? { commandOutput: input.commandOutput } : {}),
    ...(input.egressDenials ? { egressDenials: input.egressDenials } : {}),
  };
  const started = Date.now();
  let outcome: ToolOutcome;
  try {
    outcome = await tools.run(call, context);
  } catch (error) {
    if (signal.aborted) throw error;
    // A fault of the tool itself (the sandbox went away, an internal error): the model is told,
    // the log says what it was.
    const failure = toBerthError(error);
    if (failure.code === 'sandbox_gone' || failure.code === 'runtime_unavailable') throw failure;
    outcome = { ok: false, output: `The tool failed: ${mask(failure.message)}` };
  }
  outcome = { ...outcome, output: mask(outcome.output) };
  if (outcome.command) {
    const record: CommandRecord = { ...outcome.command, phase: 'agent' };
    state.commands.push(record);
    input.emit({ type: 'command', ...record, phase: 'agent' });
  }
  input.emit({
    type: 'tool_result',
    turn,
    callId: call.id,
    tool: call.name,
    ok: outcome.ok,
    output: cutMiddle(outcome.output, EVENT_TEXT_MAX_CHARS),
    durationMs: Date.now() - started,
    ...(outcome.exitCode !== undefined ? { exitCode: outcome.exitCode } : {}),
    ...(outcome.timedOut !== undefined ? { timedOut: outcome.timedOut } : {}),
  });
  return outcome;
}

/** Answers tool calls left without a result, so the conversation stays valid for a follow-up. */
function closeOpenToolCalls(messages: ChatMessage[]): void {
  const lastAssistant = messages.findLastIndex((m) => m.role === 'assistant');
  const assistant = messages[lastAssistant];
  if (assistant?.role !== 'assistant') return;
  const answered = new Set(
    messages.slice(lastAssistant + 1).flatMap((m) => (m.role === 'tool' ? [m.toolCallId] : [])),
  );
  for (const call of assistant.toolCalls ?? []) {
    if (!answered.has(call.id))
      messages.push({
        role: 'tool',
        toolCallId: call.id,
        content: 'Not run: the agent was stopped.',
      });
  }
}

/** Arguments compared by meaning, not by spacing. */
function canonicalArguments(raw: string): string {
  try {
    return JSON.stringify(JSON.parse(raw));
  } catch {
    return raw.trim();
  }
}

function wallTimeText(limits: AgentLimits): string {
  const limit =
    limits.wallTimeMs >= 10_000
      ? `${Math.round(limits.wallTimeMs / 1000)} s`
      : `${limits.wallTimeMs} ms`;
  return `Stopped: the agent's wall time of ${limit} was used up before it finished.`;
}

function cancelledError(signal: AbortSignal): unknown {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new BerthError('cancelled', 'the attempt was cancelled', {}, { cause: reason });
}
