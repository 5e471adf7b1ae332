import type { AttemptVerification } from '../domain/task/attempt.js';
import { PhaseOutput } from './phase-output.js';
import type { SandboxContext } from './sandbox-context.js';

/**
 * The environment's `verify` command, run by Berth itself in the attempt's sandbox after the
 * agent finished and after the diff and the snapshot were taken (so what the command writes is
 * neither in the diff nor in the state a follow-up resumes). Same rules as the agent's commands:
 * login bash in the workspace, the agent phase's variables, no secrets, output masked.
 * A failing verification does not fail the attempt; it is recorded and shown.
 */

const MAX_OUTPUT_BYTES = 256 * 1024;

export async function runVerification(
  ctx: SandboxContext,
  command: string,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<AttemptVerification> {
  ctx.emit({ type: 'log', stream: 'system', text: `verifying: ${ctx.masker.mask(command)}\n` });
  const output = new PhaseOutput(ctx.masker, ctx.emit);
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    script: command,
    login: true,
    env,
    workdir: ctx.workdir,
    timeoutMs,
    signal: ctx.signal,
    onOutput: output.onOutput,
    maxOutputBytes: MAX_OUTPUT_BYTES,
  });
  output.end();
  if (ctx.signal.aborted) throw ctx.signal.reason;
  const verification: AttemptVerification = {
    command: ctx.masker.mask(command),
    exitCode: result.exitCode,
    output: ctx.masker.mask(result.output),
    passed: result.exitCode === 0 && !result.timedOut,
    durationMs: result.durationMs,
    timedOut: result.timedOut,
  };
  ctx.emit({
    type: 'command',
    command: verification.command,
    exitCode: verification.exitCode,
    output: verification.output,
    phase: 'results',
    durationMs: verification.durationMs,
  });
  ctx.emit({
    type: 'log',
    stream: 'system',
    text: `verification ${verification.passed ? 'passed' : `failed (exit code ${verification.exitCode}${verification.timedOut ? ', timed out' : ''})`}\n`,
  });
  return verification;
}
