import type { Command } from 'commander';
import { BerthError } from '../errors/berth-error.js';

/** `--model`, `--max-turns`, `--max-tokens`, `--max-time-ms`: a task's own agent settings. */
export interface AgentFlags {
  model?: string;
  maxTurns?: string;
  maxTokens?: string;
  maxTimeMs?: string;
}

export function withAgentOptions(
  command: Command,
  modelHelp = "the agent's model for this task",
): Command {
  return command
    .option('--model <name>', modelHelp)
    .option('--max-turns <n>', 'at most this many model turns per attempt')
    .option('--max-tokens <n>', 'at most this many model tokens per attempt')
    .option('--max-time-ms <ms>', "at most this long for the agent's work per attempt");
}

function whole(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new BerthError('invalid_input', `${flag} must be a whole number from 1 (got ${value})`);
  return n;
}

/** The limits the flags give, without unset ones. */
export function agentLimitsFrom(flags: AgentFlags): {
  maxTurns?: number;
  maxTokens?: number;
  wallTimeMs?: number;
} {
  const maxTurns = whole(flags.maxTurns, '--max-turns');
  const maxTokens = whole(flags.maxTokens, '--max-tokens');
  const wallTimeMs = whole(flags.maxTimeMs, '--max-time-ms');
  return {
    ...(maxTurns !== undefined ? { maxTurns } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(wallTimeMs !== undefined ? { wallTimeMs } : {}),
  };
}
