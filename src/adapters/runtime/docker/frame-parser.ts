/**
 * Incremental parser for length-prefixed frames split arbitrarily across chunks. Two layouts:
 * Docker's attach multiplexing (`[stream u8][0 0 0][size u32 BE]`, 8-byte header) and the exec
 * agent's protocol (`[type u8][id u32 BE][size u32 BE]`, 9-byte header).
 *
 * A frame whose header claims more than `maxFrameBytes` is a protocol violation: the parser drops
 * what it holds, calls `onViolation` once and ignores everything after, so a forged header that
 * claims 4 GiB costs nothing (the agent's frames come from inside a sandbox; see
 * exec-agent-channel.ts).
 */
export interface ParsedFrame {
  /** Docker: 0 stdin, 1 stdout, 2 stderr. Agent: the frame type character code. */
  type: number;
  /** Agent frames only; 0 for Docker frames. */
  id: number;
  payload: Buffer;
}

/** The agent writes at most 64 KiB of output per frame; anything near this is not the agent. */
export const MAX_AGENT_FRAME_BYTES = 256 * 1024;
/** The engine writes what it read from a pipe (32 KiB at a time); generous. */
export const MAX_DOCKER_FRAME_BYTES = 16 * 1024 * 1024;

export class FrameParser {
  /** Unparsed bytes, kept as the chunks they came in so a large frame is copied once. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly headerBytes: number;
  private readonly maxFrameBytes: number;
  private failed = false;

  constructor(
    private readonly layout: 'docker' | 'agent',
    private readonly onFrame: (frame: ParsedFrame) => void,
    private readonly onViolation: (reason: string) => void,
    maxFrameBytes?: number,
  ) {
    this.headerBytes = layout === 'docker' ? 8 : 9;
    this.maxFrameBytes =
      maxFrameBytes ?? (layout === 'docker' ? MAX_DOCKER_FRAME_BYTES : MAX_AGENT_FRAME_BYTES);
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0 || this.failed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= this.headerBytes && !this.failed) {
      const header = this.peek(this.headerBytes);
      const type = header.readUInt8(0);
      const id = this.layout === 'agent' ? header.readUInt32BE(1) : 0;
      const size = this.layout === 'agent' ? header.readUInt32BE(5) : header.readUInt32BE(4);
      if (size > this.maxFrameBytes) {
        this.failed = true;
        this.chunks = [];
        this.buffered = 0;
        this.onViolation(
          `a frame header claims ${size} bytes, above the limit of ${this.maxFrameBytes}`,
        );
        return;
      }
      if (this.buffered < this.headerBytes + size) return;
      const frame = this.take(this.headerBytes + size);
      this.onFrame({ type, id, payload: frame.subarray(this.headerBytes) });
    }
  }

  /** The first n buffered bytes, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first;
    const merged = Buffer.concat(this.chunks);
    this.chunks = [merged];
    return merged;
  }

  /** Consumes and returns the first n buffered bytes. */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    this.buffered -= n;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const parts: Buffer[] = [];
    let needed = n;
    while (needed > 0) {
      const chunk = this.chunks[0] as Buffer;
      if (chunk.length <= needed) {
        parts.push(chunk);
        this.chunks.shift();
        needed -= chunk.length;
      } else {
        parts.push(chunk.subarray(0, needed));
        this.chunks[0] = chunk.subarray(needed);
        needed = 0;
      }
    }
    return Buffer.concat(parts, n);
  }
}

/** Encodes one agent frame. */
export function agentFrame(type: string, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.write(type, 0, 1, 'latin1');
  header.writeUInt32BE(id >>> 0, 1);
  header.writeUInt32BE(payload.length, 5);
  return Buffer.concat([header, payload]);
}

/** Perl's `(N/a*)*`: each string as a u32 BE length and its bytes. */
export function packStrings(values: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const value of values) {
    const bytes = Buffer.from(value, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length, 0);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}
