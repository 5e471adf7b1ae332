import { BerthError } from '../errors/berth-error.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import type { AgentExecOptions, AgentExecResult, AgentSandbox } from './agent-sandbox.js';

/**
 * An `AgentSandbox` over a `SandboxRuntime` and one sandbox. Commands run with the agent's
 * environment (the environment's variables, the replayed exports and the proxy settings; never
 * the secrets, which the caller does not pass).
 */
export class RuntimeAgentSandbox implements AgentSandbox {
  constructor(
    private readonly runtime: SandboxRuntime,
    private readonly sandboxId: string,
    readonly workdir: string,
    private readonly env: Record<string, string> = {},
  ) {}

  async exec(argv: string[], options: AgentExecOptions = {}): Promise<AgentExecResult> {
    const result = await this.runtime.exec(this.sandboxId, {
      argv,
      env: this.env,
      workdir: options.workdir ?? this.workdir,
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      maxOutputBytes: options.maxOutputBytes ?? 256 * 1024,
      ...(options.onOutput !== undefined ? { onOutput: options.onOutput } : {}),
    });
    return {
      exitCode: result.exitCode,
      output: result.output,
      omittedBytes: result.omittedBytes,
      timedOut: result.timedOut,
      durationMs: result.durationMs,
    };
  }

  readFile(path: string, options: { maxBytes?: number } = {}): Promise<Buffer> {
    return this.runtime.readFile(this.sandboxId, path, options);
  }

  /**
   * Written by a process in the sandbox (not by a tar upload), so the file belongs to the
   * sandbox's user like everything else the agent makes; an existing file keeps its mode.
   */
  async writeFile(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
    const script =
      'set -e; mkdir -p -- "$(dirname -- "$1")"; if [ -e "$1" ]; then cat > "$1"; else cat > "$1"; chmod "$2" -- "$1"; fi';
    const written = await this.runtime.exec(this.sandboxId, {
      argv: ['bash', '-c', script, 'berth-write', path, mode.toString(8)],
      env: this.env,
      stdin: data,
    });
    if (written.exitCode !== 0) {
      throw new BerthError(
        'internal',
        `could not write ${path} in the sandbox: ${written.output.trim()}`,
      );
    }
  }

  async deleteFile(path: string): Promise<void> {
    const removed = await this.runtime.exec(this.sandboxId, {
      argv: ['rm', '-f', '--', path],
      env: this.env,
    });
    if (removed.exitCode !== 0) {
      throw new BerthError(
        'internal',
        `could not delete ${path} in the sandbox: ${removed.output.trim()}`,
      );
    }
  }
}
