import { spawn } from 'node:child_process';
import { childEnvironment } from '../config/process-env.js';
import { BerthError } from '../errors/berth-error.js';

/**
 * Runs the host's `git` with an argument vector (never a shell string), for the parts of Berth
 * that work on a host checkout: `berth task apply` in the CLI and the pull request service in
 * the orchestrator. Output is collected as text; a missing git binary is a clear refusal.
 */

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunGitOptions {
  cwd: string;
  /** Extra variables on top of the process's (credentials as GIT_CONFIG_* pairs, authors). */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** Written to git's standard input. */
  input?: string | Buffer;
  /**
   * How stdout is read: UTF-8 (the default), or `latin1`: one character a byte, for paths
   * compared as git has them (bytes that are not UTF-8 must not collapse to one U+FFFD).
   */
  encoding?: 'utf8' | 'latin1';
}

export function runGit(args: readonly string[], options: RunGitOptions): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', [...args], {
      cwd: options.cwd,
      // A prompt for credentials would hang a server: git must fail instead.
      env: childEnvironment({ GIT_TERMINAL_PROMPT: '0', ...options.env }),
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.signal ? { signal: options.signal } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding(options.encoding ?? 'utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        reject(
          new BerthError(
            'invalid_input',
            'git is not installed (or not on PATH)',
            {},
            { cause: error },
          ),
        );
      } else reject(error);
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Like runGit, but a non-zero exit is a BerthError carrying git's own message. */
export async function runGitOk(
  args: readonly string[],
  options: RunGitOptions,
  what: string,
): Promise<string> {
  const result = await runGit(args, options);
  if (result.code !== 0) {
    const message = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-6).join('\n');
    throw new BerthError('internal', `${what}: ${message}`, { exitCode: result.code });
  }
  return result.stdout;
}
