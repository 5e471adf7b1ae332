import { StringDecoder } from 'node:string_decoder';
import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { OutputChunk } from '../ports/sandbox-runtime.js';
import type { MaskingStream, SecretMasker } from '../secrets/secret-masker.js';

/**
 * Turns a command's raw output into log events: bytes decoded as UTF-8 across chunk boundaries,
 * secret values masked (also when split across chunks), and the last lines kept for an error
 * message. Nothing unmasked ever leaves this object.
 */
export class PhaseOutput {
  private readonly decoders = {
    stdout: new StringDecoder('utf8'),
    stderr: new StringDecoder('utf8'),
  };
  private readonly streams: Record<'stdout' | 'stderr', MaskingStream>;
  private tailText = '';

  constructor(
    masker: SecretMasker,
    private readonly emit: (event: AttemptEventBody) => void,
    private readonly tailBytes = 8 * 1024,
  ) {
    this.streams = { stdout: masker.createStream(), stderr: masker.createStream() };
  }

  /** The handler to give an exec as `onOutput`. */
  readonly onOutput = (chunk: OutputChunk): void => {
    const text = this.streams[chunk.stream].push(this.decoders[chunk.stream].write(chunk.data));
    this.write(chunk.stream, text);
  };

  /** Flushes what the decoders and maskers hold back; call once when the command ended. */
  end(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const masking = this.streams[stream];
      const text = masking.push(this.decoders[stream].end()) + masking.flush();
      this.write(stream, text);
    }
  }

  /** The last lines written (masked). */
  tail(lines = 30): string {
    return this.tailText.trimEnd().split('\n').slice(-lines).join('\n');
  }

  private write(stream: 'stdout' | 'stderr', text: string): void {
    if (text === '') return;
    this.tailText = (this.tailText + text).slice(-this.tailBytes);
    this.emit({ type: 'log', stream, text });
  }
}
