/**
 * Raw HTTP/1.1 conversations with the egress proxy on each of its three request paths, read back
 * with a strict response parser of the tests' own: `native` (an intercepted tunnel whose TLS
 * runs on the addon's legs), `node` (an intercepted tunnel on Node's TLS) and `plain` (plain
 * HTTP through the proxy). The client writes bytes as given, so a test decides every byte of
 * framing; what comes back is split into responses exactly as a strict client would, and any
 * byte that does not parse as a response is reported (a desynchronised stream).
 */
import net from 'node:net';
import tls from 'node:tls';
import { PROXY_ADDRESS, openTunnel } from './test-world.js';

export type ProxyPath = 'native' | 'node' | 'plain';
export const PROXY_PATHS: readonly ProxyPath[] = ['native', 'node', 'plain'];

export interface ParsedResponse {
  status: number;
  headers: Array<[string, string]>;
  body: string;
}

export interface Conversation {
  /** Final (non-1xx) responses in order. */
  responses: ParsedResponse[];
  /** 1xx responses seen. */
  interim: number[];
  /** Bytes that did not parse as a response (empty for a well-framed stream). */
  garbage: string;
  /** The proxy closed the connection (rather than the test ending it). */
  closed: boolean;
}

type ResponseStep =
  | { kind: 'need' }
  | { kind: 'garbage'; reason: string }
  | { kind: 'response'; response: ParsedResponse; used: number };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** One response from the start of `data`; `ended` when the server closed (ends a close body). */
export function parseStrictResponse(data: Buffer, ended: boolean): ResponseStep {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return ended && data.length > 0 ? garbage('cut head') : { kind: 'need' };
  const lines = data.toString('latin1', 0, end).split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (status === null) return garbage(`status line ${JSON.stringify(lines[0]?.slice(0, 60))}`);
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name) || /[\r\n]/.test(line)) return garbage(`header line ${line}`);
    headers.push([name.toLowerCase(), line.slice(colon + 1).trim()]);
  }
  const code = Number(status[1]);
  const all = (name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);
  const start = end + 4;
  const done = (body: string, used: number): ResponseStep => ({
    kind: 'response',
    response: { status: code, headers, body },
    used,
  });
  if (code < 200 || code === 204 || code === 304) return done('', start);
  const te = all('transfer-encoding');
  const cl = all('content-length');
  if (te.length > 0 && cl.length > 0) return garbage('Content-Length with Transfer-Encoding');
  if (te.length > 0) {
    if (te.length !== 1 || te[0]?.toLowerCase() !== 'chunked') return garbage(`TE ${te.join()}`);
    let at = start;
    const pieces: Buffer[] = [];
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at);
      if (lineEnd === -1) return ended ? garbage('cut chunked body') : { kind: 'need' };
      const sizeLine = data.toString('latin1', at, lineEnd);
      if (!/^[0-9a-f]{1,8}$/i.test(sizeLine)) return garbage(`chunk size ${sizeLine}`);
      const size = parseInt(sizeLine, 16);
      at = lineEnd + 2;
      if (size === 0) {
        if (data.length < at + 2) return ended ? garbage('cut chunked end') : { kind: 'need' };
        if (data.toString('latin1', at, at + 2) !== '\r\n') return garbage('trailers');
        return done(Buffer.concat(pieces).toString('latin1'), at + 2);
      }
      if (data.length < at + size + 2) return ended ? garbage('cut chunk') : { kind: 'need' };
      if (data.toString('latin1', at + size, at + size + 2) !== '\r\n')
        return garbage('chunk longer than its size');
      pieces.push(data.subarray(at, at + size));
      at += size + 2;
    }
  }
  if (cl.length > 0) {
    if (cl.length !== 1 || !/^\d+$/.test(cl[0] ?? '')) return garbage(`CL ${cl.join()}`);
    const length = Number(cl[0]);
    if (data.length < start + length) return ended ? garbage('cut body') : { kind: 'need' };
    return done(data.toString('latin1', start, start + length), start + length);
  }
  if (!ended) return { kind: 'need' };
  return done(data.toString('latin1', start), data.length);
}

function garbage(reason: string): ResponseStep {
  return { kind: 'garbage', reason };
}

export interface Target {
  proxyPort: number;
  /** The CA that signed the proxy's leaf certificates (intercepted paths). */
  proxyCa: string;
  /** The allowed name and the upstream's ports. */
  host: string;
  httpsPort: number;
  httpPort: number;
}

/** The Host value and the request target prefix a request on `path` uses. */
export function addressing(path: ProxyPath, t: Target): { host: string; prefix: string } {
  return path === 'plain'
    ? { host: `${t.host}:${t.httpPort}`, prefix: `http://${t.host}:${t.httpPort}` }
    : { host: `${t.host}:${t.httpsPort}`, prefix: '' };
}

export interface ConverseOptions {
  /** Stop once this many final responses arrived (and a short grace after). */
  expected: number;
  /** Sent only after a `100 Continue` (or when 1 s passes without an answer). */
  afterContinue?: Buffer | string;
  /** Silence after which the conversation ends (the proxy kept the connection open). */
  quietMs?: number;
}

/** Opens a connection on `path`, writes `data`, and reads responses (see ConverseOptions). */
export async function converse(
  path: ProxyPath,
  t: Target,
  data: Buffer | string,
  options: ConverseOptions,
): Promise<Conversation> {
  const stream = await open(path, t);
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const result: Conversation = { responses: [], interim: [], garbage: '', closed: false };
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    let continued = options.afterContinue === undefined;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(continueTimer);
      stream.destroy();
      resolve(result);
    };
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(finish, ms);
    };
    const sendBody = () => {
      if (continued) return;
      continued = true;
      if (options.afterContinue !== undefined) stream.write(options.afterContinue);
    };
    const continueTimer = setTimeout(sendBody, 1000);
    const drain = (ended: boolean) => {
      while (result.garbage === '' && buffered.length > 0) {
        const step = parseStrictResponse(buffered, ended);
        if (step.kind === 'need') break;
        if (step.kind === 'garbage') {
          result.garbage = `${step.reason}: ${buffered.toString('latin1').slice(0, 200)}`;
          break;
        }
        buffered = buffered.subarray(step.used);
        if (step.response.status < 200) {
          result.interim.push(step.response.status);
          sendBody();
        } else {
          result.responses.push(step.response);
          // A final answer before the body was asked for: the body is not sent.
          continued = true;
        }
      }
    };
    stream.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      drain(false);
      if (result.garbage !== '') finish();
      else if (result.responses.length >= options.expected) arm(60);
      else arm(options.quietMs ?? 1500);
    });
    stream.on('error', () => undefined);
    stream.on('close', () => {
      result.closed = !settled;
      drain(true);
      finish();
    });
    stream.write(data);
    arm(options.quietMs ?? 1500);
  });
}

async function open(path: ProxyPath, t: Target): Promise<net.Socket | tls.TLSSocket> {
  if (path === 'plain') {
    const socket = net.connect(t.proxyPort, PROXY_ADDRESS);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return socket;
  }
  const tunnel = await openTunnel(t.proxyPort, `${t.host}:${t.httpsPort}`);
  if (tunnel.status !== 200) throw new Error(`CONNECT answered ${tunnel.status}`);
  const secure = tls.connect({
    socket: tunnel.socket,
    servername: t.host,
    ca: t.proxyCa,
    ALPNProtocols: ['http/1.1'],
  });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return secure;
}
