import { BerthError } from '../errors/berth-error.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';

/**
 * Files in and out of a sandbox through an exec (stdin in, stdout out) rather than the engine's
 * archive API: the exec channel is already open, so this costs a few milliseconds where an archive
 * round trip costs hundreds. Binary safe (bytes are collected as they arrive, not as text).
 *
 * Threat model for reads. The sandbox is hostile: the file may be a symlink to `/dev/zero`, a
 * device, a FIFO, a sparse file of terabytes, or grow while it is read, and every program the read
 * runs inside the sandbox (`bash`, `stat`, `head`) may have been replaced. So:
 *  - the sandbox first reports whether the path is a regular file (not a symlink) and its size;
 *    anything else, or a size above the caller's cap, is refused before one byte of content is
 *    sent;
 *  - whatever the sandbox says, the orchestrator keeps at most `maxBytes` of content: a stream
 *    that goes past the size it announced (or past the cap) is cut at once, the command is killed
 *    and the read refused, so memory stays within the cap whatever the sandbox sends;
 *  - content shorter than announced (the file changed while read) is refused too.
 * A read still costs at most its exec's time-out (a FIFO swapped in after the check blocks `head`).
 */

// $1 path, $2 octal mode. The data arrives on stdin.
const WRITE = 'mkdir -p -- "${1%/*}" && cat > "$1" && chmod -- "$2" "$1"';

/** Reads larger than this need the caller to say so (`maxBytes`). */
export const DEFAULT_SANDBOX_READ_MAX_BYTES = 8 * 1024 * 1024;

const NOT_FOUND = 66;
const NOT_REGULAR = 65;
/**
 * $1 path, $2 cap. Prints the file's size on one line, then the content when the size is within
 * the cap. Exit 66: the path does not exist; 65: it is not a regular file (type on stderr).
 */
const READ = String.raw`
f=$1
if [ -L "$f" ]; then echo "a symbolic link" >&2; exit ${NOT_REGULAR}; fi
[ -e "$f" ] || exit ${NOT_FOUND}
if [ ! -f "$f" ]; then stat -c %F -- "$f" >&2; exit ${NOT_REGULAR}; fi
size=$(stat -c %s -- "$f") || exit 1
printf '%s\n' "$size"
[ "$size" -le "$2" ] || exit 0
exec head -c "$size" -- "$f"
`;

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
    throw new BerthError(
      'internal',
      `could not write ${path} in the sandbox: ${result.output.trim()}`,
    );
}

/**
 * The file's bytes, or undefined when it does not exist. Refused (a BerthError `task_failed`,
 * details `reason: 'sandbox_file'`) when it is not a regular file or holds more than `maxBytes`
 * (default DEFAULT_SANDBOX_READ_MAX_BYTES); see the threat model above.
 */
export async function readSandboxFile(
  runtime: SandboxRuntime,
  sandboxId: string,
  path: string,
  signal?: AbortSignal,
  maxBytes = DEFAULT_SANDBOX_READ_MAX_BYTES,
): Promise<Buffer | undefined> {
  const refuse = (why: string, extra: Record<string, unknown> = {}): BerthError =>
    new BerthError('task_failed', `refused to read ${path} from the sandbox: ${why}`, {
      reason: 'sandbox_file',
      path,
      maxBytes,
      ...extra,
    });
  const stop = new AbortController();
  let refusal: BerthError | undefined;
  const cut = (error: BerthError): void => {
    refusal ??= error;
    stop.abort(error);
  };
  let header = Buffer.alloc(0);
  let size: number | undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  const onData = (data: Buffer): void => {
    if (refusal !== undefined) return;
    if (size === undefined) {
      header = Buffer.concat([header, data]);
      const newline = header.indexOf(0x0a);
      if (newline < 0) {
        if (header.length > 24) cut(refuse('the sandbox answered with no size'));
        return;
      }
      const text = header.subarray(0, newline).toString('latin1');
      if (!/^\d{1,20}$/.test(text)) {
        cut(refuse('the sandbox answered with no size'));
        return;
      }
      size = Number(text);
      data = header.subarray(newline + 1);
      header = Buffer.alloc(0);
    }
    if (data.length === 0) return;
    received += data.length;
    // Past the size it announced, or any content for a file above the cap: a lie; stop now.
    if (received > size || size > maxBytes) {
      cut(refuse(`the sandbox sent more than the ${Math.min(size, maxBytes)} bytes it announced`));
      return;
    }
    chunks.push(Buffer.from(data));
  };
  let result;
  try {
    result = await runtime.exec(sandboxId, {
      argv: ['bash', '-c', READ, 'berth-read', path, String(maxBytes)],
      timeoutMs: 120_000,
      maxOutputBytes: 4096,
      onOutput: (chunk) => {
        if (chunk.stream === 'stdout') onData(chunk.data);
      },
      signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
    });
  } catch (error) {
    if (refusal !== undefined && !signal?.aborted) throw refusal;
    throw error;
  }
  if (refusal !== undefined) throw refusal;
  if (result.exitCode === NOT_FOUND) return undefined;
  if (result.exitCode === NOT_REGULAR) {
    const kind =
      printable(result.stderr.trim().split('\n')[0] ?? '').slice(0, 80) || 'a special file';
    throw refuse(`it is not a regular file (${kind})`, { kind });
  }
  if (result.exitCode !== 0 || size === undefined)
    throw refuse(
      `the read failed (exit code ${result.exitCode}): ${printable(result.stderr.trim()).slice(0, 300)}`,
    );
  if (size > maxBytes)
    throw refuse(`it holds ${size} bytes, above the limit of ${maxBytes}`, { size });
  if (received !== size)
    throw refuse(`it changed while it was read (${received} of ${size} bytes arrived)`, { size });
  return Buffer.concat(chunks, received);
}

/** Sandbox text for a message: printable ASCII only. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}
