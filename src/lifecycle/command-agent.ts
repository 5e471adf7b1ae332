import type { AgentContext, AgentOutcome, AgentPhase } from './agent-phase.js';

/**
 * An agent phase that runs one command (`berth run --command "npm test"`): "does my environment
 * work?". The attempt succeeds when the command exits with 0.
 */
export class CommandAgent implements AgentPhase {
  constructor(
    private readonly command: string,
    private readonly timeoutMs?: number,
  ) {}

  async run(context: AgentContext): Promise<AgentOutcome> {
    const record = await context.exec(
      this.command,
      this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {},
    );
    if (record.timedOut)
      return { message: `The command timed out: ${this.command}`, succeeded: false };
    if (record.outOfMemory === true)
      return {
        message: `The command was killed: out of memory (exit code ${record.exitCode}; the sandbox's memory limit is resources.memoryMb in the environment): ${this.command}`,
        succeeded: false,
      };
    return {
      message: `The command exited with code ${record.exitCode}: ${this.command}`,
      succeeded: record.exitCode === 0,
    };
  }
}
