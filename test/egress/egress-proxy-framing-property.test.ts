/**
 * The framing property (issue 18): for generated pipelines of requests with random framing
 * (true, lying, doubled, obfuscated or missing lengths and codings, framing headers named in
 * Connection, bodies that hold whole requests, bare LF, HTTP/1.0), on a random one of the three
 * paths, the strict upstream parses exactly what the proxy logged as allowed: as many requests,
 * in order, each one a whole request Node's parser (the proxy's) read from the same bytes, with
 * the same method, target and body; nothing it found ambiguous; and the sandbox's side parses
 * as whole responses.
 *
 * "What Node's parser read" comes from a reference: the same bytes sent straight to a plain
 * Node HTTP server on loopback, which records every request it parsed whole.
 */
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PROXY_PATHS,
  addressing,
  converse,
  type ProxyPath,
  type Target,
} from './support/proxy-paths.js';
import { startStrictUpstream, type StrictUpstream } from './support/strict-upstream.js';
import { until } from './support/sockets.js';
import {
  startTestProxy,
  startTestWorld,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

/** Generated pipelines: about 12 s on a 2-core machine. */
const RUNS = 300;

const TRANSFER_CODINGS = [
  'chunked',
  'Chunked',
  ' chunked',
  '\tchunked',
  'xchunked',
  'chunked, identity',
  'identity, chunked',
  'chunked\r\nTransfer-Encoding: chunked',
  'identity\r\n chunked',
] as const;
const LENGTH_STYLES = [
  'exact',
  'zeros',
  'spaces',
  'sign',
  'list',
  'twice',
  'conflict',
  'short',
  'long',
] as const;
/** Body pieces; {P} is the target prefix and {H} the Host of the path under test. */
const FRAGMENTS = [
  'abc',
  'hello',
  '0\r\n\r\n',
  '\r\n',
  '5\r\nhello\r\n',
  'GET {P}/smuggled HTTP/1.1\r\nHost: {H}\r\n\r\n',
  'PUT {P}/smuggled HTTP/1.1\r\nHost: {H}\r\nContent-Length: 0\r\n\r\n',
  'POST {P}/smuggled HTTP/1.1\r\nHost: {H}\r\nContent-Length: 3\r\n\r\nabc',
  'DELETE {P}/smuggled HTTP/1.1\r\nHost: other-allowed.test\r\n\r\n',
] as const;

type Framing =
  | { kind: 'none' }
  | { kind: 'length'; style: (typeof LENGTH_STYLES)[number] }
  | {
      kind: 'chunked';
      coding: (typeof TRANSFER_CODINGS)[number];
      withLength: boolean;
      sizes: number[];
      extension: boolean;
      upper: boolean;
    };

interface GeneratedRequest {
  method: string;
  version: '1.1' | '1.0';
  framing: Framing;
  body: readonly string[];
  connection: string | null;
  otherHost: boolean;
  bareLf: boolean;
}

/** Mostly honest framing (so that many runs forward something), often not. */
const framingArbitrary: fc.Arbitrary<Framing> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'length' as const, style: 'exact' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('length' as const),
      style: fc.constantFrom(...LENGTH_STYLES),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('chunked' as const),
      coding: fc.oneof(
        { weight: 3, arbitrary: fc.constant('chunked' as const) },
        { weight: 2, arbitrary: fc.constantFrom(...TRANSFER_CODINGS) },
      ),
      withLength: fc.oneof(
        { weight: 4, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
      sizes: fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 3 }),
      extension: fc.boolean(),
      upper: fc.boolean(),
    }),
  },
);

const requestArbitrary: fc.Arbitrary<GeneratedRequest> = fc.record({
  method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'POST', 'DELETE', 'DELETE', 'PUT'),
  version: fc.oneof(
    { weight: 6, arbitrary: fc.constant('1.1' as const) },
    { weight: 1, arbitrary: fc.constant('1.0' as const) },
  ),
  framing: framingArbitrary,
  body: fc.oneof(
    { weight: 1, arbitrary: fc.constant<string[]>([]) },
    {
      weight: 3,
      arbitrary: fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 1, maxLength: 2 }),
    },
  ),
  connection: fc.option(
    fc.constantFrom('keep-alive', 'close', 'content-length', 'transfer-encoding', 'host', 'x-a'),
    { freq: 6 },
  ),
  otherHost: fc.oneof(
    { weight: 8, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  bareLf: fc.oneof(
    { weight: 10, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
});

/** Splits `data` into chunks of the given sizes (the rest in one last chunk). */
function chunked(data: string, sizes: number[], extension: boolean, upper: boolean): string {
  const pieces: string[] = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= data.length) break;
    pieces.push(data.slice(at, at + size));
    at += size;
  }
  if (at < data.length) pieces.push(data.slice(at));
  const hex = (n: number) => (upper ? n.toString(16).toUpperCase() : n.toString(16));
  const ext = extension ? ';x=1' : '';
  return `${pieces.map((p) => `${hex(p.length)}${ext}\r\n${p}\r\n`).join('')}0${ext}\r\n\r\n`;
}

/** The bytes of one generated request. */
function render(
  r: GeneratedRequest,
  index: number,
  a: { host: string; prefix: string },
  run: string,
): string {
  const data = r.body.join('').replaceAll('{P}', `${a.prefix}${run}`).replaceAll('{H}', a.host);
  const headers = [`Host: ${r.otherHost ? 'other-allowed.test' : a.host}`];
  let body = data;
  const f = r.framing;
  if (f.kind === 'length') {
    const n = data.length;
    const value = {
      exact: `${n}`,
      zeros: `00${n}`,
      spaces: `  ${n} `,
      sign: `+${n}`,
      list: `${n}, ${n}`,
      twice: `${n}\r\nContent-Length: ${n}`,
      conflict: `${n}\r\nContent-Length: ${n + 1}`,
      short: `${Math.max(0, n - 2)}`,
      long: `${n + 2}`,
    }[f.style];
    headers.push(`Content-Length: ${value}`);
  } else if (f.kind === 'chunked') {
    headers.push(`Transfer-Encoding: ${f.coding}`);
    body = chunked(data, f.sizes, f.extension, f.upper);
    if (f.withLength) headers.push(`Content-Length: ${body.length}`);
  }
  if (r.connection !== null) headers.push(`Connection: ${r.connection}`);
  const head = `${r.method} ${a.prefix}${run}/p${index} HTTP/${r.version}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
  return (r.bareLf ? head.replace('\r\nHost', '\nHost') : head) + body;
}

interface Parsed {
  method: string;
  target: string;
  body: string;
}

/**
 * What Node's HTTP parser reads from `data`: every request it parsed whole, in order, and
 * whether it stopped at an error. The reference never answers, so nothing (a close after an
 * HTTP/1.0 response) stops it from reading all that the proxy's parser could have read.
 */
async function referenceParse(
  server: { port: number; seen: Parsed[]; connections: Set<net.Socket> },
  data: string,
  prefix: string,
): Promise<{ requests: Parsed[]; failed: boolean }> {
  server.seen.length = 0;
  const socket = net.connect(server.port, '127.0.0.1');
  let received = '';
  // Done when the server closed the connection (a parse error) or has read every byte and its
  // parser had its turns (a fixed short window failed under load: requests went unseen).
  const total = Buffer.byteLength(data, 'latin1');
  const serverSide = () => [...server.connections].find((c) => c.remotePort === socket.localPort);
  let closed = false;
  const readAll = async () => {
    await until(() => closed || (serverSide()?.bytesRead ?? 0) >= total, 10_000);
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
  };
  await new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('close', () => {
      closed = true;
      resolve();
    });
    socket.on('error', () => undefined);
    socket.write(data, () => void readAll().then(resolve, resolve));
  });
  socket.destroy();
  return {
    requests: server.seen.map((r) => ({
      ...r,
      target: r.target.startsWith(prefix) ? r.target.slice(prefix.length) : r.target,
    })),
    failed: received.includes(' 400 '),
  };
}

/** Whether `part` appears in `whole` in order (not necessarily next to each other). */
function isSubsequence(part: Parsed[], whole: Parsed[]): boolean {
  let at = 0;
  for (const p of part) {
    while (
      at < whole.length &&
      !(
        whole[at]?.method === p.method &&
        whole[at]?.target === p.target &&
        whole[at]?.body === p.body
      )
    )
      at++;
    if (at === whole.length) return false;
    at++;
  }
  return true;
}

describe('the framing property: the upstream parses exactly what the proxy allowed', () => {
  let world: TestWorld;
  let upstream: StrictUpstream;
  const proxies = new Map<ProxyPath, TestProxy>();
  let reference: http.Server;
  const referenceState = { port: 0, seen: [] as Parsed[], connections: new Set<net.Socket>() };
  let runs = 0;

  beforeAll(async () => {
    world = await startTestWorld();
    upstream = await startStrictUpstream(world.upstreamCa);
    for (const path of PROXY_PATHS) {
      proxies.set(
        path,
        await startTestProxy(
          { ...world, httpPort: upstream.httpPort, httpsPort: upstream.httpsPort },
          { domains: ['allowed.test'], methods: ['GET', 'POST', 'DELETE'] },
          { interceptTls: path === 'node' ? 'node' : 'native' },
        ),
      );
    }
    // The reference: Node's HTTP server with its defaults, as the proxy's listener parses.
    const record = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        referenceState.seen.push({
          method: req.method ?? '',
          target: req.url ?? '',
          body: Buffer.concat(chunks).toString('latin1'),
        });
      });
      res.on('error', () => undefined);
    };
    reference = http.createServer({ maxHeaderSize: 32 * 1024 }, record);
    reference.on('connection', (c: net.Socket) => {
      referenceState.connections.add(c);
      c.once('close', () => referenceState.connections.delete(c));
    });
    reference.on('checkContinue', (req, res) => {
      res.writeContinue();
      record(req, res);
    });
    await new Promise<void>((resolve) => reference.listen(0, '127.0.0.1', resolve));
    referenceState.port = (reference.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    for (const proxy of proxies.values()) await proxy.proxy.close();
    reference.closeAllConnections();
    await new Promise<void>((resolve) => reference.close(() => resolve()));
    await upstream.close();
    await world.close();
  });

  it(`holds for ${RUNS} generated pipelines`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PROXY_PATHS),
        fc.array(requestArbitrary, { minLength: 1, maxLength: 3 }),
        async (path, requests) => {
          const proxy = proxies.get(path);
          if (proxy === undefined) throw new Error('no proxy');
          upstream.reset();
          proxy.decisions.length = 0;
          const target: Target = {
            proxyPort: proxy.port,
            proxyCa: proxy.ca?.certificatePem ?? '',
            host: 'allowed.test',
            httpsPort: upstream.httpsPort,
            httpPort: upstream.httpPort,
          };
          const a = addressing(path, target);
          // Targets carry the run's number: a straggler of an earlier run cannot count here.
          const run = `/r${++runs}`;
          const mine = () =>
            upstream.requests.filter(
              (r) => r.target.startsWith(`${run}/`) || !/^\/r\d+\//.test(r.target),
            );
          const data = requests.map((r, i) => render(r, i, a, run)).join('');
          const parsed = await referenceParse(referenceState, data, a.prefix);
          const conversation = await converse(path, target, data, {
            expected: parsed.requests.length + (parsed.failed ? 1 : 0),
            quietMs: 300,
          });
          const allowed = () => {
            const list: string[] = [];
            for (const d of proxy.decisions.filter((e) => e.scheme !== 'connect')) {
              if (d.allowed) list.push(`${d.method} ${d.host}`);
              else if (/cut off/.test(d.reason)) list.pop();
            }
            return list;
          };
          const seen = () =>
            mine().map((r) => `${r.method} ${(r.host ?? '').replace(/:\d+$/, '')}`);
          // A request allowed just now may still be on its way.
          await until(() => seen().length >= allowed().length, 10_000).catch(() => undefined);
          expect(upstream.errors).toEqual([]);
          expect(seen()).toEqual(allowed());
          const upstreamParsed = mine().map((r) => ({
            method: r.method,
            target: r.target,
            body: r.body.toString('latin1'),
          }));
          expect(isSubsequence(upstreamParsed, parsed.requests)).toBe(true);
          expect(conversation.garbage).toBe('');
        },
      ),
      { numRuns: RUNS },
    );
  }, 120_000);
});
