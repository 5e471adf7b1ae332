import type { OutputChunk } from '../ports/sandbox-runtime.js';

/**
 * What the agent's tools need from a sandbox: run an argv, read, write and delete files. Paths
 * are absolute paths inside the sandbox; the tools confine them to the workspace before calling
 * (see workspace-paths.ts). `RuntimeAgentSandbox` implements it over a `SandboxRuntime`; tests
 * may implement it in memory for pure logic.
 */
export interface AgentExecOptions {
  workdir?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Bound on the output kept (head and tail). */
  maxOutputBytes?: number;
  /** Output as the command writes it (for the live log). */
  onOutput?: (chunk: OutputChunk) => void;
}

export interface AgentExecResult {
  exitCode: number;
  /** stdout and stderr interleaved, bounded. */
  output: string;
  /** Bytes left out of `output` between its head and tail. */
  omittedBytes: number;
  timedOut: boolean;
  durationMs: number;
}

export interface AgentSandbox {
  /** The repository's root inside the sandbox (absolute). */
  readonly workdir: string;
  exec(argv: string[], options?: AgentExecOptions): Promise<AgentExecResult>;
  /**
   * A regular file's bytes. Rejects with a BerthError `not_found` when the file does not exist,
   * `invalid_input` when it is not a regular file (a symlink, a device, a FIFO) and
   * `payload_too_large` when it holds more than `maxBytes` (the runtime's default cap when not
   * given); the size is checked before the content is read.
   */
  readFile(path: string, options?: { maxBytes?: number }): Promise<Buffer>;
  /** Creates missing parent directories. `mode` defaults to 0o644. */
  writeFile(path: string, data: Buffer | string, mode?: number): Promise<void>;
  deleteFile(path: string): Promise<void>;
}
