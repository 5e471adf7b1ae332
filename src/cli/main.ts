import { Command, CommanderError } from 'commander';
import { CliContext, type CliIo } from './cli-context.js';
import { registerEnvCommands } from './commands/env-command.js';
import { registerTokenCommands } from './commands/token-command.js';
import { registerLoginCommand } from './commands/login-command.js';
import { registerServeCommand } from './commands/serve-command.js';
import { registerDoctorCommand } from './commands/doctor-command.js';
import { registerExecCommand, registerTaskCommands } from './commands/task-command.js';
import { registerRunCommand } from './commands/run-command.js';
import { registerImageCommand } from './commands/image-command.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import { BERTH_VERSION } from '../version.js';

/**
 * The CLI's composition root. Errors print one clear line (the message, never a stack) and the
 * exit code comes from the error registry: 2 for bad input.
 */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command('berth')
    .description('Berth: a self-hosted execution environment for coding agents')
    .version(BERTH_VERSION)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
      outputError: (s, write) => write(s.startsWith('error:') ? `berth: ${s.slice(7)}` : s),
    })
    // `--raw` (on the commands that print sandbox text): everything printed as it came.
    .hook('preAction', (_program, action) => {
      ctx.raw = action.opts<{ raw?: boolean }>().raw === true;
    });
  registerServeCommand(program, ctx);
  registerLoginCommand(program, ctx);
  registerEnvCommands(program, ctx);
  registerTokenCommands(program, ctx);
  registerDoctorCommand(program, ctx);
  registerExecCommand(program, ctx);
  registerTaskCommands(program, ctx);
  registerRunCommand(program, ctx);
  registerImageCommand(program, ctx);
  return program;
}

/**
 * The exit status of a command whose reader went away (`berth task logs T | head -2`): what a
 * Unix tool that SIGPIPE ended reports (128 + 13), as `set -o pipefail` expects.
 */
export const CLOSED_PIPE_EXIT_CODE = 141;

/**
 * Writing to a closed pipe (EPIPE on stdout or stderr) ends the command at once and quietly, for
 * every command, here in one place: there is no one left to read what it would print.
 */
export function endQuietlyOnClosedPipe(
  streams: NodeJS.WritableStream[],
  exit: (code: number) => void,
): void {
  for (const stream of streams) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      exit(CLOSED_PIPE_EXIT_CODE);
    });
  }
}

export async function main(
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  if (io.stdout === process.stdout || io.stderr === process.stderr) {
    endQuietlyOnClosedPipe([process.stdout, process.stderr], (code) => process.exit(code));
  }
  const ctx = new CliContext(io);
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end with exit code 0; usage errors are bad input.
      return error.exitCode === 0 ? 0 : 2;
    }
    const berthError = toBerthError(error);
    ctx.err(`berth: ${berthError.message}`);
    if (argv.includes('--json')) {
      ctx.json({
        error: { code: berthError.code, message: berthError.message, details: berthError.details },
      });
    }
    if (!(error instanceof BerthError) && error instanceof Error && error.stack) {
      // An unexpected failure: the message above is what the user needs; the stack helps a bug report.
      ctx.err(`(unexpected error; run with BERTH_DEBUG=1 to see where)`);
    }
    return berthError.exitCode;
  }
}
