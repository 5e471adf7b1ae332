import http from 'node:http';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  PROXY_ADDRESS,
  rawExchange,
  startTestProxy,
  startTestWorld,
  statusCodes,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

let world: TestWorld;
let open: TestProxy;
let limited: TestProxy;
let off: TestProxy;

beforeAll(async () => {
  world = await startTestWorld();
  open = await startTestProxy(
    world,
    { domains: ['allowed.test', 'loopback.test'] },
    { withCa: false },
  );
  limited = await startTestProxy(world, {
    domains: ['allowed.test'],
    methods: ['GET', 'HEAD', 'OPTIONS'],
  });
  off = await startTestProxy(
    world,
    { access: 'off', domains: ['allowed.test'] },
    { withCa: false },
  );
});
afterAll(async () => {
  await Promise.all([open, limited, off].map((p) => p.proxy.close()));
  await world.close();
});
beforeEach(() => {
  world.requests.length = 0;
  world.canary.length = 0;
  world.lookups.length = 0;
  for (const p of [open, limited, off]) p.decisions.length = 0;
});
afterEach(() => {
  expect(world.canary).toEqual([]);
});

function proxied(
  proxy: TestProxy,
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      const req = http.request({
        host: PROXY_ADDRESS,
        port: proxy.port,
        method: init.method ?? 'GET',
        path: url,
        headers: {
          host: new URL(url).host,
          ...(init.body !== undefined
            ? { 'content-length': String(Buffer.byteLength(init.body)) }
            : {}),
          ...init.headers,
        },
        agent: false,
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      });
      req.on('error', reject);
      req.end(init.body);
    },
  );
}

describe('plain HTTP through the proxy', () => {
  it('forwards an allowed request to the vetted address and reports it', async () => {
    const url = `http://allowed.test:${world.httpPort}/hello?x=1`;
    const res = await proxied(open, url, { method: 'POST', body: 'abc' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({
      method: 'POST',
      url: '/hello?x=1',
      host: `allowed.test:${world.httpPort}`,
      bodyLength: 3,
    });
    expect(open.decisions).toMatchObject([
      {
        host: 'allowed.test',
        port: world.httpPort,
        method: 'POST',
        scheme: 'http',
        allowed: true,
        rule: 'domain:allowed.test',
        address: '127.0.0.2',
      },
    ]);
  });

  it('refuses a host not on the allowlist with a 403 naming host and reason', async () => {
    const res = await proxied(open, `http://evil-allowed.test:${world.httpPort}/`);
    expect(res.status).toBe(403);
    expect(res.body).toBe(
      `berth egress: GET evil-allowed.test:${world.httpPort} denied: evil-allowed.test is not on the allowlist\n`,
    );
    expect(world.lookups).toEqual([]);
    expect(open.decisions).toMatchObject([
      { host: 'evil-allowed.test', allowed: false, rule: 'no-match' },
    ]);
  });

  it('refuses everything when access is off', async () => {
    const res = await proxied(off, `http://allowed.test:${world.httpPort}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain('internet access is off');
    expect(world.requests).toEqual([]);
  });

  it('refuses an absolute URL for one host with a Host header for another', async () => {
    const a = await rawExchange(
      open.port,
      `GET http://allowed.test:${world.httpPort}/ HTTP/1.1\r\nHost: evil.test:${world.httpPort}\r\n\r\n`,
    );
    expect(statusCodes(a)).toEqual([403]);
    expect(a).toContain('the Host header differs from the URL host');
    const b = await rawExchange(
      open.port,
      `GET http://evil.test:${world.httpPort}/ HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\n\r\n`,
    );
    expect(statusCodes(b)).toEqual([403]);
    const c = await rawExchange(
      open.port,
      `GET http://allowed.test:${world.httpPort}/ HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\nHost: evil.test\r\n\r\n`,
    );
    expect([400, 403]).toContain(statusCodes(c)[0]);
    expect(world.requests).toEqual([]);
  });

  it.each([
    ['origin form', 'GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n', 'absolute http:// URL'],
    [
      'https absolute form',
      'GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n',
      'CONNECT',
    ],
    [
      'userinfo',
      'GET http://u:p@allowed.test:PORT/ HTTP/1.1\r\nHost: allowed.test:PORT\r\n\r\n',
      'userinfo',
    ],
    [
      'IP literal',
      'GET http://127.0.0.2:PORT/ HTTP/1.1\r\nHost: 127.0.0.2:PORT\r\n\r\n',
      'IP literals',
    ],
    ['short IPv4', 'GET http://127.1:PORT/ HTTP/1.1\r\nHost: 127.1:PORT\r\n\r\n', 'IP literals'],
    [
      'IPv6 literal',
      'GET http://[::ffff:127.0.0.1]:PORT/ HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:PORT\r\n\r\n',
      'IP literals',
    ],
    [
      'port not allowed',
      'GET http://allowed.test:81/ HTTP/1.1\r\nHost: allowed.test:81\r\n\r\n',
      'port 81 is not allowed',
    ],
    [
      'ftp',
      'GET ftp://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n',
      'absolute http:// URL',
    ],
  ])('refuses %s', async (_label, text, reason) => {
    const response = await rawExchange(open.port, text.replaceAll('PORT', String(world.httpPort)));
    expect([400, 403]).toContain(statusCodes(response)[0]);
    expect(response).toContain(reason);
    expect(world.lookups).toEqual([]);
    expect(world.requests).toEqual([]);
  });

  it('refuses an allowed name that resolves to loopback', async () => {
    const res = await proxied(open, `http://loopback.test:${world.httpPort}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain('loopback.test resolves to 127.0.0.9, a refused loopback address');
  });

  it('refuses request smuggling: Content-Length with Transfer-Encoding', async () => {
    const smuggled = `POST http://allowed.test:${world.httpPort}/a HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://evil.test:${world.httpPort}/ HTTP/1.1\r\nHost: evil.test:${world.httpPort}\r\n\r\n`;
    const response = await rawExchange(open.port, smuggled);
    expect(statusCodes(response)[0]).toBe(400);
    expect(world.requests).toEqual([]);
  });

  it('refuses request smuggling: repeated Content-Length', async () => {
    for (const lengths of [
      ['0', '44'],
      ['5', '5'],
    ]) {
      const smuggled = `POST http://allowed.test:${world.httpPort}/a HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\nContent-Length: ${lengths[0]}\r\nContent-Length: ${lengths[1]}\r\n\r\nhello`;
      const response = await rawExchange(open.port, smuggled);
      expect(statusCodes(response)[0], lengths.join(',')).toBe(400);
    }
    expect(world.requests).toEqual([]);
  });

  it('refuses odd transfer codings', async () => {
    const text = `POST http://allowed.test:${world.httpPort}/a HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`;
    const response = await rawExchange(open.port, text);
    expect(statusCodes(response)[0]).toBe(400);
    expect(world.requests).toEqual([]);
  });

  it.each([
    [
      'WebSocket',
      'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
    ],
    [
      'h2c',
      'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n',
    ],
    ['Upgrade without Connection', 'Upgrade: websocket\r\n'],
  ])('refuses a %s upgrade', async (_label, headers) => {
    const response = await rawExchange(
      open.port,
      `GET http://allowed.test:${world.httpPort}/ HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\n${headers}\r\n`,
    );
    expect(statusCodes(response)).toEqual([403]);
    expect(response).toContain('protocol upgrades');
    expect(world.requests).toEqual([]);
  });

  it('relays 100-continue from the upstream for an allowed request', async () => {
    const host = `allowed.test:${world.httpPort}`;
    const socket = net.connect(open.port, PROXY_ADDRESS);
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('100 Continue') && !text.includes('sent')) {
        text += '(sent)';
        socket.write('hello');
      }
    });
    socket.write(
      `POST http://${host}/upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
    );
    await new Promise((resolve) => socket.once('close', resolve));
    expect(statusCodes(text)).toEqual([100, 200]);
    expect(world.requests).toMatchObject([{ method: 'POST', url: '/upload', body: 'hello' }]);
  });

  it('a redirect is just a response: following it to a refused host is refused', async () => {
    const first = await proxied(
      open,
      `http://allowed.test:${world.httpPort}/redirect?to=${encodeURIComponent(`http://evil.test:${world.httpPort}/stolen`)}`,
    );
    expect(first.status).toBe(302);
    const location = first.headers.location ?? '';
    expect(location).toContain('evil.test');
    const second = await proxied(open, location);
    expect(second.status).toBe(403);
    expect(second.body).toContain('evil.test is not on the allowlist');
    expect(world.requests.map((r) => r.url)).toEqual([
      `/redirect?to=${encodeURIComponent(`http://evil.test:${world.httpPort}/stolen`)}`,
    ]);
  });
});

describe('plain HTTP with method limits (GET, HEAD, OPTIONS)', () => {
  it('allows GET, HEAD and OPTIONS', async () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      const res = await proxied(limited, `http://allowed.test:${world.httpPort}/`, { method });
      expect(res.status, method).toBe(200);
    }
    expect(world.requests.map((r) => r.method)).toEqual(['GET', 'HEAD', 'OPTIONS']);
  });

  it.each(['POST', 'PUT', 'PATCH', 'DELETE', 'PROPFIND', 'TRACE', 'MKCOL'])(
    'refuses %s',
    async (method) => {
      const res = await proxied(limited, `http://allowed.test:${world.httpPort}/`, {
        method,
        body: method === 'TRACE' ? '' : 'x',
      });
      expect(res.status).toBe(403);
      expect(res.body).toMatch(
        new RegExp(
          `^berth egress: ${method} allowed\\.test:\\d+ denied: method not allowed \\(allowed: `,
        ),
      );
      expect(world.requests).toEqual([]);
      expect(limited.decisions).toMatchObject([{ method, allowed: false, rule: 'method' }]);
    },
  );

  it('refuses a GET with a body, by length or by chunks', async () => {
    const a = await rawExchange(
      limited.port,
      `GET http://allowed.test:${world.httpPort}/ HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\nContent-Length: 5\r\n\r\nhello`,
    );
    expect(statusCodes(a)).toEqual([403]);
    expect(a).toContain('a body on GET is not allowed');
    const b = await rawExchange(
      limited.port,
      `GET http://allowed.test:${world.httpPort}/ HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    expect(statusCodes(b)).toEqual([403]);
    expect(world.requests).toEqual([]);
  });

  it.each(['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override'])(
    'refuses the method-override header %s',
    async (header) => {
      const res = await proxied(limited, `http://allowed.test:${world.httpPort}/`, {
        headers: { [header]: 'DELETE' },
      });
      expect(res.status).toBe(403);
      expect(res.body).toContain('method-override header');
      expect(world.requests).toEqual([]);
    },
  );

  it('refuses a request that waits for 100-continue before it sends its body', async () => {
    const host = `allowed.test:${world.httpPort}`;
    const response = await rawExchange(
      limited.port,
      `PUT http://${host}/x HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`,
    );
    expect(statusCodes(response)).toEqual([403]);
    expect(world.requests).toEqual([]);
  });

  it('checks each pipelined request: GET then POST in one write', async () => {
    const host = `allowed.test:${world.httpPort}`;
    const response = await rawExchange(
      limited.port,
      `GET http://${host}/first HTTP/1.1\r\nHost: ${host}\r\n\r\nPOST http://${host}/second HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 3\r\n\r\nabc`,
    );
    expect(statusCodes(response)).toEqual([200, 403]);
    expect(world.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /first']);
    // Decisions are reported as they are made (the refusal needs no lookup, so it may come first).
    expect(limited.decisions.map((d) => `${d.method} ${d.allowed}`).sort()).toEqual([
      'GET true',
      'POST false',
    ]);
  });
});
