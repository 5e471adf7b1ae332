import { StringDecoder } from 'node:string_decoder';
import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { OutputChunk } from '../ports/sandbox-runtime.js';
import type {
  InterleavedMaskingStream,
  MaskedPiece,
  SecretMasker,
} from '../secrets/secret-masker.js';

/**
 * Turns a command's raw output into log events: bytes decoded as UTF-8 across chunk boundaries,
 * secret values masked (also when split across chunks, or between stdout and stderr: both are
 * masked as one text in arrival order), and the last lines kept for an error message. Nothing
 * unmasked ever leaves this object.
 */
export class PhaseOutput {
  private readonly decoders = {
    stdout: new StringDecoder('utf8'),
    stderr: new StringDecoder('utf8'),
  };
  private readonly masking: InterleavedMaskingStream<'stdout' | 'stderr'>;
  private tailText = '';

  constructor(
    masker: SecretMasker,
    private readonly emit: (event: AttemptEventBody) => void,
    private readonly tailBytes = 8 * 1024,
  ) {
    this.masking = masker.createInterleavedStream();
  }

  /** The handler to give an exec as `onOutput`. */
  readonly onOutput = (chunk: OutputChunk): void => {
    const text = this.decoders[chunk.stream].write(chunk.data);
    this.write(this.masking.push(chunk.stream, text));
  };

  /** Flushes what the decoders and maskers hold back; call once when the command ended. */
  end(): void {
    for (const stream of ['stdout', 'stderr'] as const)
      this.write(this.masking.push(stream, this.decoders[stream].end()));
    this.write(this.masking.flush());
  }

  /** The last lines written (masked). */
  tail(lines = 30): string {
    return this.tailText.trimEnd().split('\n').slice(-lines).join('\n');
  }

  private write(pieces: Array<MaskedPiece<'stdout' | 'stderr'>>): void {
    for (const { stream, text } of pieces) {
      if (text === '') continue;
      this.tailText = (this.tailText + text).slice(-this.tailBytes);
      this.emit({ type: 'log', stream, text });
    }
  }
}
