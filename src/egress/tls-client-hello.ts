/**
 * Threat model. The first bytes a sandbox sends into a CONNECT tunnel are untrusted. The proxy
 * reads them before dialling anything: they must be a TLS ClientHello (so SSH or any other
 * protocol cannot ride a tunnel opened for HTTPS) naming the CONNECT host in its SNI. This parser
 * never reads past the buffer, bounds what it buffers, and answers "need more", "not TLS" or the
 * fields it found. It does not decide anything.
 */

export const CLIENT_HELLO_MAX_BYTES = 64 * 1024;

export interface ClientHello {
  /** The SNI host name as sent (not normalised), if any. */
  serverName: string | undefined;
  /** ALPN protocols offered, if the extension is present. */
  alpn: string[] | undefined;
}

export type ClientHelloResult =
  | { status: 'complete'; hello: ClientHello }
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string };

const RECORD_HEADER = 5;
const HANDSHAKE = 22;
const CLIENT_HELLO = 1;

/** Parses the ClientHello at the start of `data` (possibly spread over several TLS records). */
export function parseClientHello(data: Buffer): ClientHelloResult {
  if (data.length === 0) return { status: 'incomplete' };
  if (data[0] !== HANDSHAKE)
    return { status: 'invalid', reason: 'the first bytes are not a TLS handshake' };
  if (data.length >= 2 && data[1] !== 3)
    return { status: 'invalid', reason: 'the first bytes are not a TLS handshake' };
  // Reassemble the handshake message from consecutive handshake records.
  const fragments: Buffer[] = [];
  let offset = 0;
  let handshakeLength: number | undefined;
  let have = 0;
  while (true) {
    if (data.length < offset + RECORD_HEADER) return tooLong(data) ?? { status: 'incomplete' };
    if (data[offset] !== HANDSHAKE || data[offset + 1] !== 3) {
      return { status: 'invalid', reason: 'a ClientHello record is not a TLS handshake record' };
    }
    const recordLength = data.readUInt16BE(offset + 3);
    if (recordLength === 0 || recordLength > 16384 + 2048)
      return { status: 'invalid', reason: 'bad TLS record length' };
    if (data.length < offset + RECORD_HEADER + recordLength)
      return tooLong(data) ?? { status: 'incomplete' };
    fragments.push(data.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + recordLength));
    have += recordLength;
    offset += RECORD_HEADER + recordLength;
    if (handshakeLength === undefined && have >= 4) {
      const first = Buffer.concat(fragments);
      if (first[0] !== CLIENT_HELLO)
        return { status: 'invalid', reason: 'the first handshake message is not a ClientHello' };
      handshakeLength = first.readUIntBE(1, 3);
      if (handshakeLength > CLIENT_HELLO_MAX_BYTES)
        return { status: 'invalid', reason: 'ClientHello too large' };
    }
    if (handshakeLength !== undefined && have >= 4 + handshakeLength) break;
  }
  const message = Buffer.concat(fragments).subarray(4, 4 + handshakeLength);
  try {
    return { status: 'complete', hello: parseBody(message) };
  } catch (error) {
    return {
      status: 'invalid',
      reason: error instanceof Error ? error.message : 'malformed ClientHello',
    };
  }
}

function tooLong(data: Buffer): ClientHelloResult | undefined {
  return data.length > CLIENT_HELLO_MAX_BYTES
    ? { status: 'invalid', reason: 'ClientHello too large' }
    : undefined;
}

class Reader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}
  private need(n: number): void {
    if (this.offset + n > this.buffer.length)
      throw new Error('malformed ClientHello (truncated field)');
  }
  u8(): number {
    this.need(1);
    return this.buffer.readUInt8(this.offset++);
  }
  u16(): number {
    this.need(2);
    const v = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buffer.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  get remaining(): number {
    return this.buffer.length - this.offset;
  }
}

function parseBody(message: Buffer): ClientHello {
  const r = new Reader(message);
  r.bytes(2); // legacy_version
  r.bytes(32); // random
  r.bytes(r.u8()); // session id
  r.bytes(r.u16()); // cipher suites
  r.bytes(r.u8()); // compression methods
  let serverName: string | undefined;
  let alpn: string[] | undefined;
  if (r.remaining === 0) return { serverName, alpn };
  const extensions = new Reader(r.bytes(r.u16()));
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const body = new Reader(extensions.bytes(extensions.u16()));
    if (seen.has(type)) throw new Error('duplicate TLS extension');
    seen.add(type);
    if (type === 0) {
      const list = new Reader(body.bytes(body.u16()));
      while (list.remaining > 0) {
        const nameType = list.u8();
        const name = list.bytes(list.u16());
        if (nameType !== 0) continue;
        if (serverName !== undefined) throw new Error('more than one SNI host name');
        serverName = name.toString('latin1');
      }
    } else if (type === 16) {
      alpn = [];
      const list = new Reader(body.bytes(body.u16()));
      while (list.remaining > 0) alpn.push(list.bytes(list.u8()).toString('latin1'));
    }
  }
  return { serverName, alpn };
}
