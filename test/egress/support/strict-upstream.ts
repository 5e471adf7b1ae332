/**
 * A strict HTTP/1.1 origin server for the request-smuggling tests: raw TCP and TLS listeners on
 * the test world's server address with a parser of their own, so that it sees exactly the bytes
 * the proxy sent and no library's leniency hides a second request. It logs every request it
 * parsed, in order, and every framing it found ambiguous or malformed (a test fails on any of
 * those). It keeps reading after a request's body, so a body the proxy forwarded without framing
 * shows up as one more request: exactly what a lenient origin would have answered.
 *
 * Answers: `200` with the text `upstream saw METHOD target` under its Content-Length, a
 * `100 Continue` first when the request expects one, or the raw bytes a test put in `scripted`
 * for the request's target (to try response tricks on the proxy).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { CertificateAuthority } from '../../../src/egress/certificate-authority.js';
import { SERVER_ADDRESS } from './test-world.js';

export interface ParsedRequest {
  /** Which connection (a counter, the same for requests on one connection). */
  connection: number;
  scheme: 'http' | 'https';
  method: string;
  target: string;
  version: string;
  /** The Host header's value. */
  host: string | undefined;
  headers: Array<[string, string]>;
  body: Buffer;
}

export interface StrictUpstream {
  httpPort: number;
  httpsPort: number;
  requests: ParsedRequest[];
  /** Framing the server found ambiguous or malformed (a proxy must never send any). */
  errors: string[];
  /**
   * Raw answers by request target (the whole response, framing included); with `close` the
   * server closes the connection after it.
   */
  scripted: Map<string, { answer: Buffer | string; close?: boolean }>;
  reset(): void;
  close(): Promise<void>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/(1\.[01])$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const MAX_HEAD = 64 * 1024;

type Step =
  | { kind: 'need' }
  | { kind: 'error'; reason: string }
  | { kind: 'request'; request: Omit<ParsedRequest, 'connection' | 'scheme'>; used: number };

/** Parses one request from the start of `data` (RFC 9112, strictly). */
export function parseStrictRequest(data: Buffer, onHead?: (expect: boolean) => void): Step {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) {
    if (data.length > MAX_HEAD) return { kind: 'error', reason: 'head too large' };
    const bare = data.toString('latin1').replace(/\r\n/g, '');
    if (/[\r\n]/.test(bare)) return { kind: 'error', reason: 'bare CR or LF in the head' };
    return { kind: 'need' };
  }
  const text = data.toString('latin1', 0, end);
  const lines = text.split('\r\n');
  if (lines.some((l) => /[\r\n]/.test(l)))
    return { kind: 'error', reason: 'bare CR or LF in the head' };
  const requestLine = REQUEST_LINE.exec(lines[0] ?? '');
  if (requestLine === null)
    return { kind: 'error', reason: `malformed request line ${JSON.stringify(lines[0])}` };
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name))
      return { kind: 'error', reason: `malformed header line ${JSON.stringify(line)}` };
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    if (!FIELD_VALUE.test(value))
      return { kind: 'error', reason: `control character in ${JSON.stringify(name)}` };
    headers.push([name.toLowerCase(), value]);
  }
  const all = (name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);
  const hosts = all('host');
  if (hosts.length !== 1) return { kind: 'error', reason: `${hosts.length} Host headers` };
  const te = all('transfer-encoding');
  const cl = all('content-length');
  if (te.length > 0 && cl.length > 0)
    return { kind: 'error', reason: 'Content-Length with Transfer-Encoding' };
  if (te.length > 1 || (te.length === 1 && te[0] !== 'chunked'))
    return { kind: 'error', reason: `Transfer-Encoding ${JSON.stringify(te)}` };
  if (cl.length > 1 || (cl.length === 1 && !/^\d{1,15}$/.test(cl[0] ?? '')))
    return { kind: 'error', reason: `Content-Length ${JSON.stringify(cl)}` };
  const connection = all('connection').flatMap((v) => v.toLowerCase().split(/[\t ,]+/));
  for (const framing of ['content-length', 'transfer-encoding', 'host']) {
    if (connection.includes(framing))
      return { kind: 'error', reason: `Connection names ${framing}` };
  }
  onHead?.(all('expect').some((v) => v.toLowerCase() === '100-continue'));
  const head = {
    method: requestLine[1] ?? '',
    target: requestLine[2] ?? '',
    version: requestLine[3] ?? '',
    host: hosts[0],
    headers,
  };
  const bodyStart = end + 4;
  if (cl.length === 1) {
    const length = Number(cl[0]);
    if (data.length < bodyStart + length) return { kind: 'need' };
    return {
      kind: 'request',
      request: { ...head, body: data.subarray(bodyStart, bodyStart + length) },
      used: bodyStart + length,
    };
  }
  if (te.length === 0)
    return { kind: 'request', request: { ...head, body: Buffer.alloc(0) }, used: bodyStart };
  const pieces: Buffer[] = [];
  let at = bodyStart;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd === -1) return { kind: 'need' };
    const sizeLine = data.toString('latin1', at, lineEnd);
    if (!/^[0-9a-f]{1,8}$/i.test(sizeLine))
      return { kind: 'error', reason: `chunk size line ${JSON.stringify(sizeLine)}` };
    const size = parseInt(sizeLine, 16);
    at = lineEnd + 2;
    if (size === 0) {
      if (data.length < at + 2) return { kind: 'need' };
      if (data.toString('latin1', at, at + 2) !== '\r\n')
        return { kind: 'error', reason: 'trailers after the last chunk' };
      return {
        kind: 'request',
        request: { ...head, body: Buffer.concat(pieces) },
        used: at + 2,
      };
    }
    if (data.length < at + size + 2) return { kind: 'need' };
    pieces.push(data.subarray(at, at + size));
    if (data.toString('latin1', at + size, at + size + 2) !== '\r\n')
      return { kind: 'error', reason: 'chunk data longer than its size' };
    at += size + 2;
  }
}

export async function startStrictUpstream(ca: CertificateAuthority): Promise<StrictUpstream> {
  const requests: ParsedRequest[] = [];
  const errors: string[] = [];
  const scripted: StrictUpstream['scripted'] = new Map();
  const sockets = new Set<net.Socket>();
  let connections = 0;

  const serve = (scheme: 'http' | 'https') => (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const connection = ++connections;
    let buffered = Buffer.alloc(0);
    let continued = false;
    socket.on('data', (data: Buffer) => {
      buffered = Buffer.concat([buffered, data]);
      for (;;) {
        const step = parseStrictRequest(buffered, (expect) => {
          if (expect && !continued) {
            continued = true;
            socket.write('HTTP/1.1 100 Continue\r\n\r\n');
          }
        });
        if (step.kind === 'need') return;
        if (step.kind === 'error') {
          errors.push(`${scheme} connection ${connection}: ${step.reason}`);
          socket.destroy();
          return;
        }
        continued = false;
        buffered = buffered.subarray(step.used);
        const request = { connection, scheme, ...step.request };
        requests.push(request);
        const script = scripted.get(request.target);
        if (script !== undefined) {
          socket.write(script.answer);
          if (script.close === true) {
            socket.end();
            return;
          }
          continue;
        }
        const body = `upstream saw ${request.method} ${request.target}`;
        const closes = request.headers.some(([n, v]) => n === 'connection' && /\bclose\b/i.test(v));
        socket.write(
          `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n` +
            `${closes ? 'connection: close\r\n' : ''}\r\n${request.method === 'HEAD' ? '' : body}`,
        );
        if (closes) {
          socket.end();
          return;
        }
      }
    });
  };

  const contexts = new Map<string, tls.SecureContext>();
  for (const name of ['allowed.test', 'other-allowed.test']) {
    const leaf = await ca.leafFor(name);
    contexts.set(
      name,
      tls.createSecureContext({ key: leaf.privateKeyPem, cert: leaf.certificatePem }),
    );
  }
  const plain = net.createServer(serve('http'));
  const secure = tls.createServer(
    {
      ALPNProtocols: ['http/1.1'],
      SNICallback: (name, callback) => callback(null, contexts.get(name)),
    },
    serve('https'),
  );
  secure.on('tlsClientError', () => undefined);
  const listen = (server: net.Server) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, SERVER_ADDRESS, () => resolve((server.address() as net.AddressInfo).port));
    });
  const httpPort = await listen(plain);
  const httpsPort = await listen(secure);
  return {
    httpPort,
    httpsPort,
    requests,
    errors,
    scripted,
    reset() {
      requests.length = 0;
      errors.length = 0;
      scripted.clear();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all(
        [plain, secure].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
    },
  };
}
