/**
 * An adversarial review's findings against the egress proxy, on each of its three request paths
 * (intercepted on the native TLS legs, intercepted on Node's TLS, plain HTTP), with the strict
 * upstream of the smuggling suite:
 * - an upstream answer Node's client parses but a ServerResponse cannot re-send (a control
 *   character in the reason phrase, a status below 100, an unasked 101) is a 502, never an
 *   exception thrown out of an event listener (which would end the orchestrator's process);
 * - a request a pooled upstream connection took and closed on without answering is sent again
 *   only when it is safe to repeat (GET, HEAD, OPTIONS), never a DELETE;
 * - bytes an upstream sends after a bodiless response never become the answer to the next
 *   request on a pooled connection;
 * - requests pipelined on one connection are bounded (the connection closes past the bound);
 * - a partial request head inside an intercepted tunnel times out like one on plain HTTP;
 * - a CONNECT pipelined behind a refused plain request is refused, never handled out of turn.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  PROXY_PATHS,
  addressing,
  converse,
  type ProxyPath,
  type Target,
} from './support/proxy-paths.js';
import { startStrictUpstream, type StrictUpstream } from './support/strict-upstream.js';
import {
  PROXY_ADDRESS,
  openTunnel,
  startTestProxy,
  startTestWorld,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);

function harness(path: ProxyPath, methods: string[] = ['GET', 'HEAD', 'POST', 'DELETE']) {
  const h = {} as { world: TestWorld; upstream: StrictUpstream; proxy: TestProxy; target: Target };
  beforeAll(async () => {
    process.on('uncaughtException', onUncaught);
    h.world = await startTestWorld();
    h.upstream = await startStrictUpstream(h.world.upstreamCa);
    h.proxy = await startTestProxy(
      { ...h.world, httpPort: h.upstream.httpPort, httpsPort: h.upstream.httpsPort },
      { domains: ['allowed.test'], methods },
      { interceptTls: path === 'node' ? 'node' : 'native', headersTimeoutMs: 300 },
    );
    h.target = {
      proxyPort: h.proxy.port,
      proxyCa: h.proxy.ca?.certificatePem ?? '',
      host: 'allowed.test',
      httpsPort: h.upstream.httpsPort,
      httpPort: h.upstream.httpPort,
    };
  });
  afterAll(async () => {
    process.off('uncaughtException', onUncaught);
    await h.proxy.proxy.close();
    await h.upstream.close();
    await h.world.close();
  });
  beforeEach(() => {
    uncaught.length = 0;
    h.upstream.reset();
    h.proxy.decisions.length = 0;
  });
  return h;
}

const get = (prefix: string, host: string, path: string, method = 'GET') =>
  `${method} ${prefix}${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

async function openStream(path: ProxyPath, t: Target): Promise<net.Socket> {
  if (path === 'plain') {
    const socket = net.connect(t.proxyPort, PROXY_ADDRESS);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('error', () => undefined);
    return socket;
  }
  const tunnel = await openTunnel(t.proxyPort, `${t.host}:${t.httpsPort}`);
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
  secure.on('error', () => undefined);
  return secure;
}

const closed = (socket: net.Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });

describe.each(PROXY_PATHS)('hostile upstream, %s path', (path) => {
  const h = harness(path);

  it.each([
    ['0x01 in the reason', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok'],
    ['0x7f in the reason', 'HTTP/1.1 200 \x7f\r\nContent-Length: 2\r\n\r\nok'],
    ['status 099', 'HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\nok'],
    ['status 000', 'HTTP/1.1 000 X\r\nContent-Length: 2\r\n\r\nok'],
    ['status 600', 'HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\nok'],
  ])('%s: a 502, and no exception escapes the proxy', async (_name, answer) => {
    h.upstream.scripted.set('/r1', { answer });
    const { host, prefix } = addressing(path, h.target);
    const c = await converse(path, h.target, get(prefix, host, '/r1'), { expected: 1 });
    expect(uncaught).toEqual([]);
    expect(c.responses.map((r) => r.status)).toEqual([502]);
    expect(c.garbage).toBe('');
  });

  it('a 101 without Upgrade (never asked for) is a 502, not a final answer', async () => {
    h.upstream.scripted.set('/r1', {
      answer: 'HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n',
    });
    const { host, prefix } = addressing(path, h.target);
    const c = await converse(path, h.target, get(prefix, host, '/r1') + get(prefix, host, '/r2'), {
      expected: 2,
    });
    expect(uncaught).toEqual([]);
    expect(c.interim).not.toContain(101);
    expect(c.responses[0]?.status).toBe(502);
    expect(c.responses.map((r) => r.status)).not.toContain(101);
  });

  it('a DELETE a pooled upstream connection took without answering is not sent again', async () => {
    h.upstream.scripted.set('/d', { answer: '', close: true });
    const { host, prefix } = addressing(path, h.target);
    const c = await converse(
      path,
      h.target,
      get(prefix, host, '/warm') + get(prefix, host, '/d', 'DELETE'),
      { expected: 2 },
    );
    const allowed = h.proxy.decisions
      .filter((d) => d.scheme !== 'connect' && d.allowed)
      .map((d) => d.method);
    expect(allowed).toEqual(['GET', 'DELETE']);
    expect(h.upstream.requests.map((r) => r.method)).toEqual(allowed);
    expect(c.responses.map((r) => r.status)).toEqual([200, 502]);
  });

  it.each([
    ['a 204', 'HTTP/1.1 204 No Content\r\n\r\n'],
    ['a Content-Length: 0', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['a Content-Length: 2', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ])('bytes after %s never answer the next request', async (_name, answer) => {
    h.upstream.scripted.set('/r1', {
      answer: `${answer}HTTP/1.1 299 Fake\r\nContent-Length: 0\r\n\r\n`,
    });
    const { host, prefix } = addressing(path, h.target);
    const c = await converse(path, h.target, get(prefix, host, '/r1') + get(prefix, host, '/r2'), {
      expected: 2,
    });
    const again = await converse(path, h.target, get(prefix, host, '/r3'), { expected: 1 });
    const got = [...c.responses, ...again.responses].map((r) => `${r.status} ${r.body}`);
    expect(got).not.toContain('299 ');
    expect(got.slice(1)).toEqual(['200 upstream saw GET /r2', '200 upstream saw GET /r3']);
  });

  it('requests pipelined behind one that waits are bounded: the connection closes', async () => {
    // The upstream takes the first request and never answers it.
    h.upstream.scripted.set('/hang', { answer: '' });
    const { host, prefix } = addressing(path, h.target);
    const socket = await openStream(path, h.target);
    socket.resume();
    const batch = get(prefix, host, '/hang').repeat(2000);
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    let sent = 0;
    for (let i = 0; i < 100 && !socket.destroyed && socket.writable; i++) {
      if (!socket.write(batch)) {
        await Promise.race([
          new Promise((resolve) => socket.once('drain', resolve)),
          closed(socket),
        ]);
      }
      sent += batch.length;
    }
    await Promise.race([closed(socket), new Promise((resolve) => setTimeout(resolve, 3000))]);
    global.gc?.();
    const grown = process.memoryUsage().heapUsed - before;
    const gone = socket.destroyed || socket.readableEnded;
    socket.destroy();
    // 14.6 MB of requests grew the heap by about 490 MB without a bound.
    expect(grown).toBeLessThan(96e6);
    expect(gone).toBe(true);
    // The first request may have gone before the flood was seen; nothing behind it did.
    const allowed = h.proxy.decisions
      .filter((d) => d.allowed && d.scheme !== 'connect')
      .map((d) => d.method);
    expect(h.upstream.requests.map((r) => r.method)).toEqual(allowed);
    expect(allowed.length).toBeLessThanOrEqual(1);
    const refusal = h.proxy.decisions.find((d) => !d.allowed);
    expect(refusal?.rule).toBe('connection');
    expect(sent).toBeGreaterThan(0);
  }, 30_000);

  it('a partial request head is closed after the head timeout', async () => {
    const { host, prefix } = addressing(path, h.target);
    const socket = await openStream(path, h.target);
    socket.resume();
    socket.write(`GET ${prefix}/slow HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `);
    const timedOut = await Promise.race([
      closed(socket).then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000)),
    ]);
    socket.destroy();
    expect(timedOut).toBe(true);
    expect(h.upstream.requests).toEqual([]);
    expect(h.proxy.decisions.filter((d) => !d.allowed).map((d) => d.rule)).toEqual(['timeout']);
  }, 10_000);
});

describe('a CONNECT pipelined behind a refused plain request', () => {
  const h = harness('native', []);
  it('is refused, never allowed out of turn', async () => {
    const socket = net.connect(h.target.proxyPort, PROXY_ADDRESS);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('error', () => undefined);
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const authority = `${h.target.host}:${h.target.httpsPort}`;
    socket.write(
      `GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n` +
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
    );
    await Promise.race([closed(socket), new Promise((resolve) => setTimeout(resolve, 2000))]);
    socket.destroy();
    expect(h.proxy.decisions.filter((d) => d.allowed)).toEqual([]);
    expect(got).not.toContain('200 Connection established');
    expect(/^HTTP\/1\.1 403 /.test(got)).toBe(true);
  });
});
