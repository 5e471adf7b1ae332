import { BerthError } from '../../../errors/berth-error.js';
import { BoundedOutput } from '../../../runtime/bounded-output.js';
import type { ExecOptions, ExecResult, OutputChunk } from '../../../ports/sandbox-runtime.js';

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/** Collects one exec's output: hands each chunk to `onOutput` in order and keeps a bounded copy. */
export class ExecCollector {
  private readonly output: BoundedOutput;
  private readonly stdout: BoundedOutput;
  private readonly stderr: BoundedOutput;
  private readonly startedAt = performance.now();
  private callbackError: unknown;

  constructor(private readonly options: ExecOptions) {
    const max = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    this.output = new BoundedOutput(max);
    this.stdout = new BoundedOutput(max);
    this.stderr = new BoundedOutput(max);
  }

  push(stream: OutputChunk['stream'], data: Buffer): void {
    if (data.length === 0) return;
    this.output.push(data);
    (stream === 'stdout' ? this.stdout : this.stderr).push(data);
    if (this.options.onOutput && this.callbackError === undefined) {
      try {
        this.options.onOutput({ stream, data });
      } catch (error) {
        // A failing consumer must not break the exec; the first error is kept for the log.
        this.callbackError = error;
      }
    }
  }

  result(exitCode: number, timedOut: boolean): ExecResult {
    return {
      exitCode,
      output: this.output.text(),
      stdout: this.stdout.text(),
      stderr: this.stderr.text(),
      omittedBytes: this.output.omittedBytes,
      timedOut,
      durationMs: Math.round((performance.now() - this.startedAt) * 100) / 100,
    };
  }
}

/** The argv an exec runs: `argv` as given, or the script under bash (`-lc` when login). */
export function commandOf(options: ExecOptions): string[] {
  if (options.argv !== undefined && options.script !== undefined) {
    throw new BerthError('invalid_input', 'exec takes argv or script, not both');
  }
  if (options.script !== undefined)
    return ['bash', options.login === true ? '-lc' : '-c', options.script];
  if (options.argv === undefined || options.argv.length === 0)
    throw new BerthError('invalid_input', 'exec needs argv or script');
  return options.argv;
}
