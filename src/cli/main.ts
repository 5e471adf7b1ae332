import { Command, CommanderError } from 'commander';
import { CliContext, type CliIo } from './cli-context.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import { BERTH_VERSION } from '../version.js';

type Register = (program: Command, ctx: CliContext) => void;

/**
 * The top-level commands, in the order help lists them, each with the module that declares it,
 * imported only when that command runs (or when help or a typo needs them all): `berth
 * --version` loads none, `berth task show` only the task commands (docs/benchmarks.md).
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: () => Promise<Register>]> = [
  ['serve', async () => (await import('./commands/serve-command.js')).registerServeCommand],
  ['login', async () => (await import('./commands/login-command.js')).registerLoginCommand],
  ['env', async () => (await import('./commands/env-command.js')).registerEnvCommands],
  [
    'template',
    async () => (await import('./commands/template-command.js')).registerTemplateCommands,
  ],
  ['token', async () => (await import('./commands/token-command.js')).registerTokenCommands],
  ['doctor', async () => (await import('./commands/doctor-command.js')).registerDoctorCommand],
  ['exec', async () => (await import('./commands/task-command.js')).registerExecCommand],
  ['task', async () => (await import('./commands/task-command.js')).registerTaskCommands],
  ['run', async () => (await import('./commands/run-command.js')).registerRunCommand],
  ['image', async () => (await import('./commands/image-command.js')).registerImageCommand],
  ['usage', async () => (await import('./commands/usage-command.js')).registerUsageCommand],
];

/** The commands that read the configuration (CliContext.config): config.ts is loaded for them. */
const CONFIG_COMMANDS = new Set(['serve', 'login', 'doctor', 'run', 'image']);

/**
 * Which top-level commands argv needs: the one it names, none for `--version`, and all of them
 * for help, no command, or a name that is not one (commander then lists or suggests them).
 */
function commandsFor(argv: readonly string[]): string[] {
  const args = argv.slice(2);
  const first = args[0];
  if (first === '--version' || first === '-V') return [];
  const known = COMMANDS.map(([name]) => name);
  if (first !== undefined && known.includes(first)) return [first];
  return known;
}

/**
 * The CLI's composition root. Errors print one clear line (the message, never a stack) and the
 * exit code comes from the error registry: 2 for bad input.
 */
export async function buildProgram(
  ctx: CliContext,
  names: readonly string[] = COMMANDS.map(([name]) => name),
): Promise<Command> {
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
  const chosen = COMMANDS.filter(([name]) => names.includes(name));
  const registers = await Promise.all(chosen.map(([, load]) => load()));
  if (chosen.some(([name]) => CONFIG_COMMANDS.has(name)))
    ctx.loadConfig = (await import('../config/config.js')).loadConfig;
  for (const register of registers) register(program, ctx);
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
  try {
    const program = await buildProgram(ctx, commandsFor(argv));
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
