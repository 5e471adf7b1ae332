/**
 * Issue 18's hole and its neighbours, on all three request paths: a `Connection` header that
 * names a framing header must not strip the framing from what goes upstream (the body would
 * become a second request the proxy never checked), responses must not lose theirs either, and
 * nothing queued behind a refused request is ever forwarded.
 */
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  PROXY_PATHS,
  addressing,
  converse,
  type ProxyPath,
  type Target,
} from './support/proxy-paths.js';
import { until } from './support/sockets.js';
import { startStrictUpstream, type StrictUpstream } from './support/strict-upstream.js';
import {
  PROXY_ADDRESS,
  startTestProxy,
  startTestWorld,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

describe.each(PROXY_PATHS)('framing headers named in Connection, %s path', (path: ProxyPath) => {
  let world: TestWorld;
  let upstream: StrictUpstream;
  let proxy: TestProxy;
  let target: Target;

  beforeAll(async () => {
    world = await startTestWorld();
    upstream = await startStrictUpstream(world.upstreamCa);
    proxy = await startTestProxy(
      { ...world, httpPort: upstream.httpPort, httpsPort: upstream.httpsPort },
      { domains: ['allowed.test'], methods: ['GET', 'POST', 'DELETE'] },
      { interceptTls: path === 'node' ? 'node' : 'native' },
    );
    target = {
      proxyPort: proxy.port,
      proxyCa: proxy.ca?.certificatePem ?? '',
      host: 'allowed.test',
      httpsPort: upstream.httpsPort,
      httpPort: upstream.httpPort,
    };
  });
  afterAll(async () => {
    await proxy.proxy.close();
    await upstream.close();
    await world.close();
  });
  beforeEach(() => {
    upstream.reset();
    proxy.decisions.length = 0;
  });

  const requestDecisions = () => proxy.decisions.filter((d) => d.scheme !== 'connect');

  it.each(['POST', 'DELETE'])(
    'refuses %s with Connection: content-length whose body is a whole request (the reproduction)',
    async (method) => {
      const { host, prefix } = addressing(path, target);
      const smuggled =
        `PUT ${prefix.replace('allowed.test', 'other-allowed.test')}/smuggled HTTP/1.1\r\n` +
        `Host: ${host.replace('allowed.test', 'other-allowed.test')}\r\nContent-Length: 0\r\n\r\n`;
      const conversation = await converse(
        path,
        target,
        `${method} ${prefix}/first HTTP/1.1\r\nHost: ${host}\r\n` +
          `Content-Length: ${smuggled.length}\r\nConnection: content-length\r\n\r\n${smuggled}`,
        { expected: 1 },
      );
      expect(upstream.requests.map((r) => `${r.method} ${r.target}`)).not.toContainEqual(
        expect.stringContaining('/smuggled'),
      );
      expect(upstream.errors).toEqual([]);
      expect(upstream.requests).toEqual([]);
      expect(conversation.responses.map((r) => r.status)).toEqual([400]);
      expect(conversation.closed).toBe(true);
      expect(requestDecisions()).toMatchObject([{ method, allowed: false, rule: 'framing' }]);
      expect(requestDecisions()[0]?.reason).toMatch(/Connection header names content-length/);
    },
  );

  it.each([
    ['transfer-encoding', 'Transfer-Encoding: chunked', true],
    ['host', 'Content-Length: 0', false],
    ['keep-alive, Content-Length', 'Content-Length: 0', false],
  ])('refuses a request whose Connection names %s', async (named, framing, chunked) => {
    const { host, prefix } = addressing(path, target);
    const smuggled = `GET ${prefix}/smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const body = chunked ? `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n` : '';
    const conversation = await converse(
      path,
      target,
      `DELETE ${prefix}/first HTTP/1.1\r\nHost: ${host}\r\n${framing}\r\n` +
        `Connection: ${named}\r\n\r\n${body}`,
      { expected: 1 },
    );
    expect(upstream.errors).toEqual([]);
    expect(upstream.requests).toEqual([]);
    expect(conversation.responses.map((r) => r.status)).toEqual([400]);
    expect(requestDecisions()).toMatchObject([{ allowed: false, rule: 'framing' }]);
  });

  it('forwards a body under its own parsed framing, whatever else Connection names', async () => {
    const { host, prefix } = addressing(path, target);
    const conversation = await converse(
      path,
      target,
      `DELETE ${prefix}/one HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\n` +
        `Connection: x-trace, keep-alive\r\nX-Trace: 1\r\n\r\nhello` +
        `DELETE ${prefix}/two HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n`,
      { expected: 2 },
    );
    expect(upstream.errors).toEqual([]);
    expect(conversation.garbage).toBe('');
    expect(conversation.responses.map((r) => r.body)).toEqual([
      'upstream saw DELETE /one',
      'upstream saw DELETE /two',
    ]);
    expect(upstream.requests.map((r) => [r.method, r.target, r.body.toString()])).toEqual([
      ['DELETE', '/one', 'hello'],
      ['DELETE', '/two', 'abcde'],
    ]);
    // The header Connection named is hop-by-hop: it does not reach the upstream.
    expect(upstream.requests[0]?.headers.map(([n]) => n)).not.toContain('x-trace');
    expect(requestDecisions().map((d) => d.allowed)).toEqual([true, true]);
  });

  it.each([
    ['content-length', 'Content-Length: 55'],
    ['transfer-encoding', 'Transfer-Encoding: chunked'],
  ])('keeps the sandbox in step when a response Connection names %s', async (named, framing) => {
    // The body looks like a second response: a client that lost the framing would take it
    // for the answer to its next request.
    const inner = 'HTTP/1.1 299 Smuggled\r\nContent-Length: 8\r\n\r\nsmuggled';
    const body =
      framing === 'Transfer-Encoding: chunked'
        ? `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`
        : inner.padEnd(55, '.');
    upstream.scripted.set('/r1', {
      answer: `HTTP/1.1 200 OK\r\n${framing}\r\nConnection: ${named}\r\n\r\n${body}`,
    });
    const { host, prefix } = addressing(path, target);
    const request = (p: string) => `GET ${prefix}${p} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const conversation = await converse(path, target, request('/r1') + request('/r2'), {
      expected: 2,
    });
    expect(conversation.garbage).toBe('');
    expect(conversation.responses.map((r) => r.status)).toEqual([200, 200]);
    expect(conversation.responses[0]?.body).toBe(
      framing.startsWith('Content') ? inner.padEnd(55, '.') : inner,
    );
    expect(conversation.responses[1]?.body).toBe('upstream saw GET /r2');
  });

  it('forwards nothing pipelined behind a refused request, answers the refusal, and closes', async () => {
    // Many times over: the refusal's answer was sometimes lost on the native path (the request
    // behind it destroyed the connection before the leg's thread had sent the 403; about one
    // conversation in 15 to 30 on a loaded machine).
    const { host, prefix } = addressing(path, target);
    for (let round = 0; round < 150; round++) {
      proxy.decisions.length = 0;
      const conversation = await converse(
        path,
        target,
        `PUT ${prefix}/denied HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\n\r\n` +
          `GET ${prefix}/behind HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
          `POST ${prefix}/behind-too HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 2\r\n\r\nhi`,
        { expected: 3 },
      );
      expect(upstream.requests).toEqual([]);
      expect({
        round,
        statuses: conversation.responses.map((r) => r.status),
        closed: conversation.closed,
        garbage: conversation.garbage,
      }).toEqual({ round, statuses: [403], closed: true, garbage: '' });
      const decisions = requestDecisions();
      expect(decisions[0]).toMatchObject({ method: 'PUT', allowed: false, rule: 'method' });
      expect(decisions.filter((d) => d.allowed)).toEqual([]);
    }
  });

  it('answers what came before a malformed request, then refuses it and closes', async () => {
    const { host, prefix } = addressing(path, target);
    const conversation = await converse(
      path,
      target,
      `GET ${prefix}/before HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
        `GET ${prefix}/broken HTTP/1.1\r\nHost : ${host}\r\n\r\n` +
        `GET ${prefix}/after HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      { expected: 3 },
    );
    expect(upstream.requests.map((r) => r.target)).toEqual(['/before']);
    expect(conversation.garbage).toBe('');
    expect(conversation.responses.map((r) => r.status)).toEqual([200, 400]);
    expect(conversation.responses[0]?.body).toBe('upstream saw GET /before');
    expect(conversation.closed).toBe(true);
    expect(requestDecisions()).toMatchObject([
      { allowed: true },
      { allowed: false, rule: 'protocol' },
    ]);
  });
});

describe('plain HTTP, a client that leaves while the name is resolved', () => {
  it('gets nothing forwarded and nothing logged as allowed', async () => {
    const world = await startTestWorld();
    const upstream = await startStrictUpstream(world.upstreamCa);
    let resolved = 0;
    const proxy = await startTestProxy(
      { ...world, httpPort: upstream.httpPort, httpsPort: upstream.httpsPort },
      { domains: ['allowed.test'] },
      {
        // A slow resolver: the client is gone before the answer.
        resolver: async (host) => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          resolved++;
          return world.resolver(host);
        },
      },
    );
    try {
      const { host, prefix } = addressing('plain', {
        proxyPort: proxy.port,
        proxyCa: '',
        host: 'allowed.test',
        httpsPort: upstream.httpsPort,
        httpPort: upstream.httpPort,
      });
      const socket = net.connect(proxy.port, PROXY_ADDRESS);
      socket.on('error', () => undefined);
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(`POST ${prefix}/gone HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 2\r\n\r\nhi`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
      await until(() => resolved === 1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(upstream.requests).toEqual([]);
      expect(proxy.decisions.filter((d) => d.allowed)).toEqual([]);
    } finally {
      await proxy.proxy.close();
      await upstream.close();
      await world.close();
    }
  });
});

describe('plain HTTP without method limits (TRACE and OPTIONS pass)', () => {
  let world: TestWorld;
  let upstream: StrictUpstream;
  let proxy: TestProxy;
  let target: Target;

  beforeAll(async () => {
    world = await startTestWorld();
    upstream = await startStrictUpstream(world.upstreamCa);
    proxy = await startTestProxy(
      { ...world, httpPort: upstream.httpPort, httpsPort: upstream.httpsPort },
      { domains: ['allowed.test'] },
    );
    target = {
      proxyPort: proxy.port,
      proxyCa: '',
      host: 'allowed.test',
      httpsPort: upstream.httpsPort,
      httpPort: upstream.httpPort,
    };
  });
  afterAll(async () => {
    await proxy.proxy.close();
    await upstream.close();
    await world.close();
  });
  beforeEach(() => {
    upstream.reset();
    proxy.decisions.length = 0;
  });

  it.each(['TRACE', 'OPTIONS', 'DELETE'])(
    'refuses %s with Connection: content-length, and frames its body otherwise',
    async (method) => {
      const { host, prefix } = addressing('plain', target);
      const smuggled = `PUT ${prefix}/smuggled HTTP/1.1\r\nHost: other-allowed.test:${upstream.httpPort}\r\nContent-Length: 0\r\n\r\n`;
      const refused = await converse(
        'plain',
        target,
        `${method} ${prefix}/first HTTP/1.1\r\nHost: ${host}\r\n` +
          `Content-Length: ${smuggled.length}\r\nConnection: content-length\r\n\r\n${smuggled}`,
        { expected: 1 },
      );
      expect(upstream.errors).toEqual([]);
      expect(upstream.requests).toEqual([]);
      expect(refused.responses.map((r) => r.status)).toEqual([400]);
      const framed = await converse(
        'plain',
        target,
        `${method} ${prefix}/framed HTTP/1.1\r\nHost: ${host}\r\n` +
          `Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
        { expected: 1 },
      );
      expect(framed.responses.map((r) => r.body)).toEqual([`upstream saw ${method} /framed`]);
      expect(upstream.requests.map((r) => [r.method, r.target, r.body.toString()])).toEqual([
        [method, '/framed', smuggled],
      ]);
    },
  );
});
