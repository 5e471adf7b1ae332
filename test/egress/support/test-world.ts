/**
 * A small "outside world" on loopback for the egress proxy tests: an HTTP and an HTTPS server
 * on 127.0.0.2 answering for test names, a canary on 127.0.0.9 listening on the same ports that
 * records every connection (it must record nothing when the proxy refuses), a test resolver that
 * maps test names to those addresses (and never asks the real DNS), and a CA for the upstream
 * servers. Nothing here sends a packet off this machine.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { CertificateAuthority } from '../../../src/egress/certificate-authority.js';
import {
  EgressProxy,
  type EgressDecisionEvent,
  type EgressProxyOptions,
} from '../../../src/egress/egress-proxy.js';
import { EgressPolicy } from '../../../src/domain/internet/egress-policy.js';
import type { InternetPolicy } from '../../../src/domain/environment/environment-spec.js';
import type { AddressAllowance } from '../../../src/egress/address-guard.js';

export const SERVER_ADDRESS = '127.0.0.2';
export const CANARY_ADDRESS = '127.0.0.9';
export const PROXY_ADDRESS = '127.0.0.1';

export interface RecordedRequest {
  scheme: 'http' | 'https';
  method: string;
  url: string;
  host: string | undefined;
  servername: string | undefined;
  body: string;
  /** The client port of the connection it came on (the same for requests on one connection). */
  remotePort: number | undefined;
  /** The request's headers (not enumerable: whole-object comparisons leave them out). */
  readonly headers?: http.IncomingHttpHeaders;
}

export interface TestWorld {
  httpPort: number;
  httpsPort: number;
  upstreamCa: CertificateAuthority;
  requests: RecordedRequest[];
  canary: Array<{ port: number; firstBytes: string }>;
  lookups: string[];
  resolver: (host: string) => Promise<string[]>;
  close(): Promise<void>;
}

/** Names that lead to the canary: only the policy stands between them and a connection. */
const CANARY_NAMES = [
  'evil.test',
  'evil-allowed.test',
  'evilallowed.test',
  'allowed.test.evil.test',
  'sub.allowed.test',
  'xn--llowed-2nf.test', // "аllowed.test" with a Cyrillic а
  'loopback.test',
];

const SERVER_NAMES = [
  'allowed.test',
  'a.ok.test',
  'pinned.test',
  'untrusted.test',
  'other-allowed.test',
];

/** Address allowances for the proxy: test servers only for their own names; never loopback.test. */
export const TEST_ALLOWANCES: AddressAllowance[] = [
  { range: `${SERVER_ADDRESS}/32`, hosts: [...SERVER_NAMES, 'rebind.test', 'mixed.test'] },
  { range: `${CANARY_ADDRESS}/32`, hosts: CANARY_NAMES.filter((n) => n !== 'loopback.test') },
];

function listen(server: net.Server, host: string, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as http.Server).closeAllConnections?.();
  });
}

function handler(scheme: 'http' | 'https', requests: RecordedRequest[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const servername =
        scheme === 'https' ? (req.socket as tls.TLSSocket).servername || undefined : undefined;
      requests.push({
        scheme,
        method: req.method ?? '',
        url: req.url ?? '',
        host: req.headers.host,
        servername,
        body: Buffer.concat(chunks).toString(),
        remotePort: req.socket.remotePort,
      });
      Object.defineProperty(requests.at(-1), 'headers', { value: req.headers, enumerable: false });
      const url = new URL(req.url ?? '/', 'http://x');
      if (framingCase(url, req, res)) return;
      if (url.pathname === '/redirect') {
        res.writeHead(302, { location: url.searchParams.get('to') ?? '/' });
        res.end();
        return;
      }
      if (url.pathname === '/bytes') {
        const total = Number(url.searchParams.get('n') ?? '0');
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
            sent += piece.length;
            if (!res.write(piece)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        host: req.headers.host,
        servername,
        bodyLength: chunks.reduce((n, c) => n + c.length, 0),
      });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  };
}

/** Bodies `n` bytes long of a repeating pattern (so that a lost or moved byte shows). */
export function patternBytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 10)) & 0xff;
  return out;
}

/**
 * Responses framed every way a server may frame them (for the interceptor's relaying):
 * /chunked and /close send `n` pattern bytes chunked or until close, /truncate promises `n`
 * and sends half, /slow sends `n` bytes spread over `ms` (half and then nothing with stall=1),
 * /two-lengths sends conflicting Content-Length headers, /status answers `code` without a
 * body, /hang never answers. Returns false for other paths.
 */
function framingCase(url: URL, req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const n = Number(url.searchParams.get('n') ?? '0');
  switch (url.pathname) {
    case '/chunked': {
      const body = patternBytes(n);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let at = 0; at < n; at += 10_000) res.write(body.subarray(at, at + 10_000));
      res.end();
      return true;
    }
    case '/close':
      res.useChunkedEncodingByDefault = false;
      res.shouldKeepAlive = false;
      res.writeHead(200, { 'content-type': 'application/octet-stream', connection: 'close' });
      res.end(patternBytes(n));
      return true;
    case '/truncate':
      res.writeHead(200, { 'content-length': n });
      res.write(patternBytes(Math.floor(n / 2)), () => req.socket.destroy());
      return true;
    case '/slow': {
      // `n` bytes in ten pieces over `ms` milliseconds; with ?stall=1 only half, then silence.
      const total = patternBytes(n);
      const pieces = url.searchParams.get('stall') === '1' ? 5 : 10;
      res.writeHead(200, { 'content-length': n });
      let sent = 0;
      const timer = setInterval(
        () => {
          if (sent === pieces) {
            clearInterval(timer);
            if (pieces === 10) res.end();
            return;
          }
          res.write(total.subarray((sent * n) / 10, ((sent + 1) * n) / 10));
          sent++;
        },
        Number(url.searchParams.get('ms') ?? '1000') / 10,
      );
      res.once('close', () => clearInterval(timer));
      return true;
    }
    case '/hang':
      // Never answers (the connection stays open until the other side gives up).
      return true;
    case '/two-lengths':
      req.socket.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!');
      return true;
    case '/status':
      res.writeHead(Number(url.searchParams.get('code') ?? '204'));
      res.end();
      return true;
    default:
      return false;
  }
}

export async function startTestWorld(): Promise<TestWorld> {
  const upstreamCa = await CertificateAuthority.create({ commonName: 'Berth test upstream CA' });
  const strangerCa = await CertificateAuthority.create({ commonName: 'Untrusted test CA' });
  const contexts = new Map<string, tls.SecureContext>();
  for (const name of SERVER_NAMES) {
    const leaf = await (name === 'untrusted.test' ? strangerCa : upstreamCa).leafFor(name);
    contexts.set(
      name,
      tls.createSecureContext({ key: leaf.privateKeyPem, cert: leaf.certificatePem }),
    );
  }
  const rebindLeaf = await upstreamCa.leafFor('rebind.test');
  contexts.set(
    'rebind.test',
    tls.createSecureContext({ key: rebindLeaf.privateKeyPem, cert: rebindLeaf.certificatePem }),
  );
  const fallback = contexts.get('allowed.test');

  const requests: RecordedRequest[] = [];
  const canary: TestWorld['canary'] = [];
  const lookups: string[] = [];
  const httpServer = http.createServer(handler('http', requests));
  const httpsServer = https.createServer(
    {
      ...(fallback !== undefined
        ? {
            SNICallback: (name: string, cb: (e: Error | null, c?: tls.SecureContext) => void) =>
              cb(null, contexts.get(name) ?? fallback),
          }
        : {}),
      ALPNProtocols: ['http/1.1'],
    },
    handler('https', requests),
  );
  const httpPort = await listen(httpServer, SERVER_ADDRESS);
  const httpsPort = await listen(httpsServer, SERVER_ADDRESS);
  const canaries = [httpPort, httpsPort].map((port) =>
    net.createServer((socket) => {
      let first = '';
      socket.once('data', (d: Buffer) => {
        first = d.subarray(0, 64).toString('latin1');
        const entry = canary.find((c) => c.port === port && c.firstBytes === '');
        if (entry) entry.firstBytes = first;
      });
      canary.push({ port, firstBytes: first });
      socket.on('error', () => undefined);
      socket.end();
    }),
  );
  for (const [i, server] of canaries.entries())
    await listen(server, CANARY_ADDRESS, i === 0 ? httpPort : httpsPort);

  let rebindCalls = 0;
  const resolver = (host: string): Promise<string[]> => {
    lookups.push(host);
    if (SERVER_NAMES.includes(host)) return Promise.resolve([SERVER_ADDRESS]);
    if (CANARY_NAMES.includes(host)) return Promise.resolve([CANARY_ADDRESS]);
    if (host === 'rebind.test') {
      rebindCalls++;
      return Promise.resolve([rebindCalls === 1 ? SERVER_ADDRESS : CANARY_ADDRESS]);
    }
    if (host === 'mixed.test') return Promise.resolve([CANARY_ADDRESS, SERVER_ADDRESS]);
    const error = Object.assign(new Error(`test resolver: no such name ${host}`), {
      code: 'ENOTFOUND',
    });
    return Promise.reject(error);
  };

  return {
    httpPort,
    httpsPort,
    upstreamCa,
    requests,
    canary,
    lookups,
    resolver,
    async close() {
      await Promise.all([httpServer, httpsServer, ...canaries].map(closeServer));
    },
  };
}

export interface TestProxy {
  proxy: EgressProxy;
  port: number;
  ca: CertificateAuthority | undefined;
  decisions: EgressDecisionEvent[];
}

export async function startTestProxy(
  world: TestWorld,
  internet: Partial<InternetPolicy>,
  extra: Partial<EgressProxyOptions> & {
    withCa?: boolean;
    listenHost?: string;
    /** Ports besides the world's HTTPS port that tunnels may reach. */
    extraTunnelPorts?: number[];
  } = {},
): Promise<TestProxy> {
  const policy = new EgressPolicy(
    { access: 'allowlist', presets: [], domains: [], tunnelOnly: [], ...internet },
    {
      extraPorts: {
        tunnel: [world.httpsPort, ...(extra.extraTunnelPorts ?? [])],
        http: [world.httpPort],
      },
    },
  );
  const ca =
    extra.withCa === false
      ? undefined
      : await CertificateAuthority.create({ commonName: 'env_test' });
  const decisions: EgressDecisionEvent[] = [];
  const rest: Partial<EgressProxyOptions> & {
    withCa?: boolean;
    listenHost?: string;
    extraTunnelPorts?: number[];
  } = { ...extra };
  delete rest.withCa;
  delete rest.listenHost;
  delete rest.extraTunnelPorts;
  const proxy = new EgressProxy({
    policy,
    resolver: world.resolver,
    guard: { allow: TEST_ALLOWANCES },
    ...(ca !== undefined ? { ca } : {}),
    upstreamCa: [world.upstreamCa.certificatePem],
    useBundledRoots: false,
    onDecision: (event) => decisions.push(event),
    clientHelloTimeoutMs: 2_000,
    ...rest,
  });
  const address = await proxy.listen({ host: extra.listenHost ?? PROXY_ADDRESS });
  return { proxy, port: address.port, ca, decisions };
}

/** Sends raw bytes to the proxy and returns everything it answers until it closes (or goes quiet). */
export function rawExchange(port: number, data: string | Buffer, quietMs = 800): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, PROXY_ADDRESS);
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      arm();
    });
    socket.on('close', done);
    socket.on('error', done);
    socket.on('connect', () => {
      socket.write(data);
      arm();
    });
  });
}

/** Opens a CONNECT tunnel; resolves with the status line and the socket (left open on 200). */
export function openTunnel(
  port: number,
  target: string,
  hostHeader = target,
): Promise<{ status: number; head: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, PROXY_ADDRESS);
    let buffer = '';
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`),
    );
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buffer)?.[1] ?? '0');
      // keep any bytes after the head (a refusal body) available as `head`
      resolve({ status, head: buffer, socket });
    };
    socket.on('data', onData);
    socket.on('close', () => {
      if (!buffer.includes('\r\n\r\n')) resolve({ status: 0, head: buffer, socket });
    });
  });
}

/** TLS over an open tunnel, then raw HTTP text; returns everything received until close or quiet. */
export function tlsExchange(
  socket: net.Socket,
  options: { servername: string; ca: string; alpn?: string[]; anyCertificate?: boolean },
  text: string,
  quietMs = 800,
): Promise<{ response: string; error?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const secure = tls.connect({
      socket,
      servername: options.servername,
      ca: options.ca,
      ALPNProtocols: options.alpn ?? ['http/1.1'],
      ...(options.anyCertificate === true ? { checkServerIdentity: () => undefined } : {}),
    });
    const done = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      secure.destroy();
      resolve({
        response: Buffer.concat(chunks).toString('latin1'),
        ...(error !== undefined ? { error } : {}),
      });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(), quietMs);
    };
    secure.on('secureConnect', () => {
      secure.write(text);
      arm();
    });
    secure.on('data', (c: Buffer) => {
      chunks.push(c);
      arm();
    });
    secure.on('error', (e: Error) => done(e));
    secure.on('close', () => done());
  });
}

export function statusCodes(response: string): number[] {
  return [...response.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
}

/**
 * CONNECT and the ClientHello in one write (what some clients do to save a round trip), then
 * TLS and one raw HTTP exchange over it; returns the proxy's head and the HTTP response text.
 */
export function eagerTlsExchange(
  port: number,
  target: string,
  options: { servername: string; ca: string },
  text: string,
): Promise<{ head: string; response: string }> {
  return new Promise((resolve) => {
    const raw = net.connect(port, PROXY_ADDRESS);
    let sentConnect = false;
    let head = Buffer.alloc(0);
    let headDone = false;
    const chunks: Buffer[] = [];
    const carrier = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        if (!sentConnect) {
          sentConnect = true;
          raw.write(
            Buffer.concat([
              Buffer.from(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
              chunk,
            ]),
          );
        } else {
          raw.write(chunk);
        }
        callback();
      },
    });
    raw.on('data', (d: Buffer) => {
      if (headDone) {
        carrier.push(d);
        return;
      }
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      headDone = true;
      const rest = head.subarray(end + 4);
      head = head.subarray(0, end + 4);
      if (rest.length > 0) carrier.push(rest);
    });
    raw.on('error', () => undefined);
    raw.on('close', () => carrier.push(null));
    const secure = tls.connect({
      socket: carrier,
      servername: options.servername,
      ca: options.ca,
      ALPNProtocols: ['http/1.1'],
    });
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      secure.destroy();
      raw.destroy();
      resolve({
        head: head.toString('latin1'),
        response: Buffer.concat(chunks).toString('latin1'),
      });
    };
    secure.on('secureConnect', () => secure.write(text));
    secure.on('data', (c: Buffer) => chunks.push(c));
    secure.on('end', done);
    secure.on('close', done);
    secure.on('error', done);
    setTimeout(done, 5_000).unref();
  });
}
