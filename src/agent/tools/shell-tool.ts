import { posix } from 'node:path';
import { z } from 'zod';
import type { OutputChunk } from '../../ports/sandbox-runtime.js';
import type { AgentTool } from './agent-tool.js';
import { cutMiddle } from '../cut-middle.js';

export const SHELL_DEFAULT_TIMEOUT_MS = 5 * 60_000;
export const SHELL_MAX_TIMEOUT_MS = 60 * 60_000;
/** What the model sees of a command's output (head and tail). */
export const SHELL_MAX_OUTPUT_CHARS = 16_000;

const shellArgs = z.strictObject({
  command: z
    .union([z.array(z.string()).min(1), z.string().min(1)])
    .describe(
      'The command as an argv, for example ["bash", "-lc", "npm test"]. Use bash -lc for pipes, redirections and the project\'s environment.',
    ),
  workdir: z
    .string()
    .min(1)
    .optional()
    .describe(
      'The directory to run in; relative paths are relative to the repository root (the default).',
    ),
  timeout_ms: z
    .number()
    .int()
    .positive()
    .optional()
    .describe(
      `Stop the command after this many milliseconds (default ${SHELL_DEFAULT_TIMEOUT_MS}).`,
    ),
});

export type ShellArgs = z.infer<typeof shellArgs>;

/** Words quoted for a log line (`bash -lc 'npm test'`); never executed. */
export function quoteArgv(argv: string[]): string {
  return argv
    .map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/**
 * `shell`: runs an argv in the sandbox (in the repository root unless `workdir` says otherwise)
 * and tells the model the exit code and the output, cut to its head and tail. A command that
 * outlives its timeout is stopped and the model is told so.
 */
export const shellTool: AgentTool<ShellArgs> = {
  name: 'shell',
  description:
    'Run a command in the sandbox and get its exit code and output (stdout and stderr interleaved; long output is cut to its head and tail). ' +
    'Use it to read files (cat, sed -n, rg, ls), run the tests and linters, and inspect the repository. Edit files with apply_patch.',
  schema: shellArgs,
  async run(args, context) {
    const argv = typeof args.command === 'string' ? ['bash', '-lc', args.command] : args.command;
    const root = context.sandbox.workdir;
    const workdir =
      args.workdir === undefined
        ? root
        : posix.isAbsolute(args.workdir)
          ? posix.normalize(args.workdir)
          : posix.join(root, args.workdir);
    if (workdir === root || workdir.startsWith(`${root}/`))
      context.touched([posix.relative(root, workdir) || '.']);
    touchedWords(argv, (paths) => context.touched(paths));
    const requested = Math.min(args.timeout_ms ?? SHELL_DEFAULT_TIMEOUT_MS, SHELL_MAX_TIMEOUT_MS);
    const timeoutMs = Math.max(1, Math.min(requested, context.remainingMs()));
    const live = context.commandOutput?.();
    const denials = context.egressDenials?.();
    // What the proxy denied this command: one line each, so the model knows why and stops retrying.
    let denied: string[];
    let result;
    try {
      result = await context.sandbox.exec(argv, {
        workdir,
        timeoutMs,
        signal: context.signal,
        maxOutputBytes: SHELL_MAX_OUTPUT_CHARS * 4,
        ...(live ? { onOutput: (chunk: OutputChunk) => live.onOutput(chunk) } : {}),
      });
    } finally {
      live?.end();
      denied = denials?.end() ?? [];
    }
    if (context.signal.aborted) throw context.signal.reason;
    const output = context.mask(result.output);
    const shown = cutMiddle(output, SHELL_MAX_OUTPUT_CHARS, result.omittedBytes);
    const head = result.timedOut
      ? `The command was stopped after its timeout of ${timeoutMs} ms; it had not finished. Run long commands with a larger timeout_ms, or in the background.`
      : `Exit code: ${result.exitCode}`;
    const deniedText =
      denied.length === 0
        ? ''
        : `${shown === '' || shown.endsWith('\n') ? '' : '\n'}${context.mask(denied.join('\n'))}`;
    const text = `${head}\nWall time: ${(result.durationMs / 1000).toFixed(1)} s\nOutput:\n${shown}${deniedText}`;
    return {
      output: text,
      ok: !result.timedOut && result.exitCode === 0,
      exitCode: result.exitCode,
      timedOut: result.timedOut,
      command: {
        command: context.mask(quoteArgv(argv)),
        exitCode: result.exitCode,
        output,
        durationMs: result.durationMs,
        timedOut: result.timedOut,
      },
    };
  },
};

/** Words of a command that look like workspace paths (`pkg/a/x.ts`), so nearer AGENTS.md files can be shown. */
function touchedWords(argv: string[], touched: (paths: string[]) => void): void {
  const words = argv
    .flatMap((word) => word.split(/[\s'"=;|&<>()]+/))
    .filter((w) => w.includes('/') && !w.startsWith('/') && !w.startsWith('-'));
  if (words.length > 0)
    touched(words.map((w) => posix.normalize(w)).filter((w) => !w.startsWith('..')));
}
