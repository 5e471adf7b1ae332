/**
 * Incremental parser for length-prefixed frames split arbitrarily across chunks. Two layouts:
 * Docker's attach multiplexing (`[stream u8][0 0 0][size u32 BE]`, 8-byte header) and the exec
 * agent's protocol (`[type u8][id u32 BE][size u32 BE]`, 9-byte header).
 */
export interface ParsedFrame {
  /** Docker: 0 stdin, 1 stdout, 2 stderr. Agent: the frame type character code. */
  type: number;
  /** Agent frames only; 0 for Docker frames. */
  id: number;
  payload: Buffer;
}

export class FrameParser {
  private pending: Buffer = Buffer.alloc(0);
  private readonly headerBytes: number;

  constructor(
    private readonly layout: 'docker' | 'agent',
    private readonly onFrame: (frame: ParsedFrame) => void,
  ) {
    this.headerBytes = layout === 'docker' ? 8 : 9;
  }

  push(chunk: Buffer): void {
    let data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (data.length >= this.headerBytes) {
      const type = data.readUInt8(0);
      const id = this.layout === 'agent' ? data.readUInt32BE(1) : 0;
      const size = this.layout === 'agent' ? data.readUInt32BE(5) : data.readUInt32BE(4);
      if (data.length < this.headerBytes + size) break;
      this.onFrame({ type, id, payload: data.subarray(this.headerBytes, this.headerBytes + size) });
      data = data.subarray(this.headerBytes + size);
    }
    // Keep only the unparsed remainder; copy so a large chunk is not retained by a small tail.
    this.pending = data.length === 0 ? Buffer.alloc(0) : Buffer.from(data);
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
