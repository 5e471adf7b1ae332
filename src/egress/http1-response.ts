/**
 * Threat model. The head and the chunked framing of an upstream server's HTTP/1.1 response, read
 * by the egress proxy for intercepted tunnels. The server is reached by name from the allowlist
 * but is not trusted: its bytes may be malformed or crafted to desynchronise the proxy (two
 * lengths, a folded header, a length that overflows). What it can reach is the sandbox that
 * asked (already untrusted) and the proxy's own state.
 *
 * Guarantees:
 * - Only a strict form is accepted: `HTTP/1.x NNN reason` CRLF (a status from 100 to 599, a
 *   reason without control characters), `name: value` CRLF lines with a
 *   token name, no control characters in values, no folded lines, a blank line at the end; at
 *   most 64 KB and 256 header lines. Anything else is an error (the proxy answers 502).
 * - The body's framing is decided once, here, by RFC 9112 section 6.3: no body (HEAD, 1xx, 204,
 *   304), chunked (Transfer-Encoding ending in chunked), until close (another Transfer-Encoding
 *   or no length), or Content-Length (every value the same decimal number, below 2^53). With
 *   both Transfer-Encoding and Content-Length the coding decides and the connection is not
 *   reused. A bodiless response's Content-Length is kept apart, as information only.
 * - The Connection header only tells whether the server closes; it never changes the framing.
 * - The chunked decoder takes sizes of at most 15 hex digits and lines of at most 4 KB; bytes
 *   after the last chunk are dropped and reported (the connection is not reused). Trailers are
 *   read and dropped.
 */

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_HEADER_LINES = 256;

export type BodyFraming =
  { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

export interface ResponseHead {
  status: number;
  reason: string;
  /** Names in lower case, values as sent (trimmed), in order. */
  headers: Array<[string, string]>;
  framing: BodyFraming;
  /**
   * The Content-Length of a response that has no body (to HEAD, or a 304): the size of the
   * representation, information only. Undefined unless one plain decimal value was sent.
   */
  declaredLength?: number;
  /** The server will close the connection after this response. */
  closes: boolean;
}

export type ParsedHead = { ok: true; head: ResponseHead } | { ok: false; reason: string };

function tokens(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

/** Parses a complete response head (through its blank line) to a request with `method`. */
export function parseResponseHead(bytes: Buffer, method: string): ParsedHead {
  if (bytes.length > MAX_HEAD_BYTES) return { ok: false, reason: 'response head too large' };
  const text = bytes.toString('latin1');
  if (!text.endsWith('\r\n\r\n')) return { ok: false, reason: 'incomplete response head' };
  const lines = text.slice(0, -4).split('\r\n');
  if (lines.length > MAX_HEADER_LINES + 1) return { ok: false, reason: 'too many header lines' };
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (status === null) return { ok: false, reason: 'malformed status line' };
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    if (line.includes('\r') || line.includes('\n'))
      return { ok: false, reason: 'bare CR or LF in the response head' };
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) return { ok: false, reason: 'malformed header line' };
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    if (!FIELD_VALUE.test(value)) return { ok: false, reason: 'control character in a header' };
    headers.push([name.toLowerCase(), value]);
  }
  const code = Number(status[2]);
  const http10 = status[1] === '0';
  const values = (name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);
  const connection = values('connection').flatMap(tokens);
  const closes = connection.includes('close') || (http10 && !connection.includes('keep-alive'));
  const transferEncodings = values('transfer-encoding');
  const contentLengths = values('content-length');
  const framing = bodyFraming(code, method, transferEncodings, contentLengths);
  if ('reason' in framing) return { ok: false, reason: framing.reason };
  const declared = singleLength(contentLengths);
  const informative = framing.kind === 'none' && (method === 'HEAD' || code === 304);
  return {
    ok: true,
    head: {
      status: code,
      reason: status[3] ?? '',
      headers,
      framing,
      ...(informative && declared !== undefined ? { declaredLength: declared } : {}),
      // Transfer-Encoding overrides a Content-Length sent with it (RFC 9112 6.3), but a server
      // that sends both is not trusted with another request on the connection.
      closes:
        closes ||
        framing.kind === 'close' ||
        (transferEncodings.length > 0 && contentLengths.length > 0),
    },
  };
}

/** The one length all Content-Length values agree on, if they are plain decimal numbers. */
function singleLength(contentLengths: string[]): number | undefined {
  const lengths = new Set(contentLengths.flatMap((v) => v.split(',').map((t) => t.trim())));
  const [only] = [...lengths];
  if (lengths.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) return undefined;
  return Number(only);
}

function bodyFraming(
  status: number,
  method: string,
  transferEncodings: string[],
  contentLengths: string[],
): BodyFraming | { reason: string } {
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304)
    return { kind: 'none' };
  if (transferEncodings.length > 0) {
    const codings = transferEncodings.flatMap(tokens);
    return codings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  if (contentLengths.length === 0) return { kind: 'close' };
  const length = singleLength(contentLengths);
  if (length === undefined) return { reason: 'conflicting or malformed Content-Length' };
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

/**
 * Decodes a chunked body fed in pieces. `push` returns the body bytes found; `done` becomes true
 * after the last chunk and its trailers; an error is thrown for malformed framing.
 */
export class ChunkedDecoder {
  done = false;
  /** Bytes followed the last chunk (ignored; the connection must not be reused). */
  overrun = false;
  private state: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  private line = '';
  private remaining = 0;

  push(input: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < input.length) {
      if (this.done) {
        this.overrun = true;
        break;
      }
      if (this.state === 'data') {
        const take = Math.min(this.remaining, input.length - at);
        out.push(input.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'data-end';
        continue;
      }
      const newline = input.indexOf(0x0a, at);
      const end = newline === -1 ? input.length : newline + 1;
      this.line += input.toString('latin1', at, end);
      at = end;
      if (this.line.length > 4096) throw new Error('chunked framing line too long');
      if (newline === -1) break;
      if (!this.line.endsWith('\r\n') || this.line.indexOf('\r') !== this.line.length - 2)
        throw new Error('chunked framing line without CRLF');
      const line = this.line.slice(0, -2);
      this.line = '';
      this.takeLine(line);
    }
    return out;
  }

  private takeLine(line: string): void {
    if (this.state === 'data-end') {
      if (line !== '') throw new Error('chunk data longer than its size');
      this.state = 'size';
      return;
    }
    if (this.state === 'trailer') {
      if (line === '') this.done = true;
      return;
    }
    const size = /^([0-9a-fA-F]{1,15})(?:[\t ]*;.*)?$/.exec(line);
    if (size === null) throw new Error('malformed chunk size');
    this.remaining = parseInt(size[1] ?? '', 16);
    this.state = this.remaining === 0 ? 'trailer' : 'data';
  }
}
