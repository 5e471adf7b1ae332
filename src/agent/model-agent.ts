import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { CommandRecord } from '../domain/task/command-record.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { AgentContext, AgentOutcome, AgentPhase } from '../lifecycle/agent-phase.js';
import type { ChatMessage, ModelClient } from '../ports/model-client.js';
import { runAgentLoop, type AgentLimitsOverride, type AgentStopReason } from './agent-loop.js';
import type { AgentSandbox } from './agent-sandbox.js';
import { RuntimeAgentSandbox } from './runtime-agent-sandbox.js';
import { conversationToStore } from './stored-conversation.js';
import type { AgentEnvironmentInfo } from './system-prompt.js';
import type { ToolBox } from './tools/tool-box.js';

export interface ModelAgentOptions {
  model: ModelClient;
  /** Another model than the client's default (chosen by the environment or the task). */
  modelName?: string | undefined;
  limits?: AgentLimitsOverride | undefined;
  environment?: AgentEnvironmentInfo | undefined;
  /** The conversation of the attempt this one follows up (its stored messages). */
  history?: ChatMessage[] | undefined;
  /**
   * Keeps the conversation when the loop ends (masked and bounded, see stored-conversation.ts), so
   * a follow-up can resume it. A failure to keep it is a warning in the log, not a failed attempt.
   */
  saveConversation?: ((messages: ChatMessage[]) => Promise<void>) | undefined;
  /** How to reach the sandbox; default: `RuntimeAgentSandbox` over the context's runtime. */
  sandbox?: (context: AgentContext) => AgentSandbox;
  tools?: ToolBox;
}

export interface ModelAgentOutcome extends AgentOutcome {
  stopReason: AgentStopReason;
  turns: number;
  usage: { promptTokens: number; completionTokens: number };
  commands: CommandRecord[];
  messages: ChatMessage[];
}

/**
 * The model-driven agent as an `AgentPhase`: the loop of agent-loop.ts over the attempt's sandbox.
 * The model credentials stay here, in the orchestrator; every tool call runs in the sandbox.
 */
export class ModelAgent implements AgentPhase {
  constructor(private readonly options: ModelAgentOptions) {}

  async run(context: AgentContext): Promise<ModelAgentOutcome> {
    const sandbox = this.options.sandbox?.(context) ?? defaultSandbox(context);
    const result = await runAgentLoop({
      model: this.options.model,
      sandbox,
      prompt: context.prompt,
      signal: context.signal,
      // The agent's events join AttemptEventBody once the lifecycle formats them (agent-event.ts).
      emit: (event) => context.emit(event as AttemptEventBody),
      ...(context.mask ? { mask: context.mask } : {}),
      ...(context.deadline !== undefined ? { deadline: context.deadline } : {}),
      ...(context.commandOutput ? { commandOutput: context.commandOutput } : {}),
      ...(context.egressDenials ? { egressDenials: context.egressDenials } : {}),
      ...(this.options.modelName !== undefined ? { modelName: this.options.modelName } : {}),
      ...(this.options.limits ? { limits: this.options.limits } : {}),
      ...(this.options.environment ? { environment: this.options.environment } : {}),
      ...(this.options.history ? { history: this.options.history } : {}),
      ...(this.options.tools ? { tools: this.options.tools } : {}),
    });
    if (this.options.saveConversation) {
      try {
        await this.options.saveConversation(conversationToStore(result.messages, context.mask));
      } catch (error) {
        context.emit({
          type: 'warning',
          message: `the conversation could not be kept, so a follow-up will not resume it: ${toBerthError(error).message}`,
        });
      }
    }
    return {
      message: result.message,
      succeeded: result.succeeded,
      stopReason: result.stopReason,
      turns: result.turns,
      usage: result.usage,
      commands: result.commands,
      messages: result.messages,
    };
  }
}

function defaultSandbox(context: AgentContext): AgentSandbox {
  if (!context.runtime || context.sandboxId === undefined) {
    throw new BerthError(
      'internal',
      'the model agent needs the sandbox runtime and id in its context',
    );
  }
  return new RuntimeAgentSandbox(
    context.runtime,
    context.sandboxId,
    context.workdir,
    context.env ?? {},
  );
}
