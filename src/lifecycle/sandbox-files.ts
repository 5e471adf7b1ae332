import type { SandboxRuntime } from '../ports/sandbox-runtime.js';

/**
 * Files in and out of a sandbox through an exec (stdin in, stdout out) rather than the engine's
 * archive API: the exec channel is already open, so this costs a few milliseconds where an archive
 * round trip costs hundreds. Binary safe (bytes are collected as they arrive, not as text).
 */

// $1 path, $2 octal mode. The data arrives on stdin.
const WRITE = 'mkdir -p -- "${1%/*}" && cat > "$1" && chmod -- "$2" "$1"';

export async function writeSandboxFile(
  runtime: SandboxRuntime,
  sandboxId: string,
  path: string,
  data: Buffer | string,
  options: { mode?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const result = await runtime.exec(sandboxId, {
    argv: ['bash', '-c', WRITE, 'berth-write', path, (options.mode ?? 0o644).toString(8)],
    stdin: data,
    timeoutMs: 120_000,
    maxOutputBytes: 4096,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (result.exitCode !== 0)
    throw new Error(`could not write ${path} in the sandbox: ${result.output.trim()}`);
}

/** The file's bytes, or undefined when it does not exist. */
export async function readSandboxFile(
  runtime: SandboxRuntime,
  sandboxId: string,
  path: string,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  const result = await runtime.exec(sandboxId, {
    argv: ['cat', '--', path],
    timeoutMs: 120_000,
    maxOutputBytes: 4096,
    onOutput: (chunk) => {
      if (chunk.stream === 'stdout') chunks.push(Buffer.from(chunk.data));
    },
    ...(signal ? { signal } : {}),
  });
  return result.exitCode === 0 ? Buffer.concat(chunks) : undefined;
}
