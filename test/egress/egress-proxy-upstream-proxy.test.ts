import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseUpstreamProxyUrl } from '../../src/egress/upstream-proxy.js';
import {
  startUpstreamConnectProxy,
  type UpstreamConnectProxy,
} from '../support/upstream-connect-proxy.js';
import {
  PROXY_ADDRESS,
  SERVER_ADDRESS,
  openTunnel,
  startTestProxy,
  startTestWorld,
  statusCodes,
  tlsExchange,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

// Behind a corporate proxy (issue 19 item 7): a CONNECT proxy on loopback in front of the
// loopback upstream servers. Berth's proxy must send what it allows through it, and only that.

const USER = 'corp-user';
const PASSWORD = 'pr0xy-S3cret-value';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
/** A name the Berth server cannot resolve (only the upstream proxy can). */
const OUTSIDE_ONLY = 'outside-only.test';

let world: TestWorld;
let corporate: UpstreamConnectProxy;
/** An HTTPS server for OUTSIDE_ONLY (certificate from the world's CA), reached by name only. */
let outside: https.Server;
let outsidePort = 0;
const proxies: TestProxy[] = [];
const responses: string[] = [];

const LEAK = new RegExp([PASSWORD, BASIC, USER].join('|'));
function leaked(text: string): boolean {
  return text.includes(PASSWORD) || text.includes(BASIC) || text.includes(USER);
}

beforeAll(async () => {
  world = await startTestWorld();
  const leaf = await world.upstreamCa.leafFor(OUTSIDE_ONLY);
  outside = https.createServer({ key: leaf.privateKeyPem, cert: leaf.certificatePem }, (req, res) =>
    res.end(`outside ${req.url}`),
  );
  await new Promise<void>((resolve) => outside.listen(0, SERVER_ADDRESS, resolve));
  outsidePort = (outside.address() as net.AddressInfo).port;
  corporate = await startUpstreamConnectProxy({
    resolve: (host) =>
      ['allowed.test', 'a.ok.test', 'pinned.test', OUTSIDE_ONLY].includes(host)
        ? SERVER_ADDRESS
        : undefined,
    credentials: { user: USER, password: PASSWORD },
  });
});
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.proxy.close()));
  await corporate.close();
  await new Promise<void>((resolve) => outside.close(() => resolve()));
  await world.close();
});
beforeEach(() => {
  world.requests.length = 0;
  world.canary.length = 0;
  corporate.requests.length = 0;
  corporate.refuseWith = undefined;
  responses.length = 0;
});
afterEach(() => {
  expect(world.canary).toEqual([]);
  // Nothing the sandbox side sees carries the upstream proxy's credentials.
  for (const p of proxies) expect(JSON.stringify(p.decisions)).not.toMatch(LEAK);
  for (const text of responses) expect(leaked(text)).toBe(false);
  // The origin servers never see them either.
  for (const r of world.requests)
    expect(
      leaked(JSON.stringify((r as unknown as { headers: http.IncomingHttpHeaders }).headers)),
    ).toBe(false);
});

async function behindCorporateProxy(
  internet: Parameters<typeof startTestProxy>[1],
  interceptTls: 'native' | 'node' = 'native',
  budget?: { bytesIn?: number },
): Promise<TestProxy> {
  const upstream = parseUpstreamProxyUrl(corporate.url, 'BERTH_UPSTREAM_PROXY');
  const proxy = await startTestProxy(world, internet, {
    interceptTls,
    extraTunnelPorts: [outsidePort],
    ...(budget !== undefined ? { budget } : {}),
    upstreamProxy: { https: upstream, http: upstream, noProxy: [{ name: 'a.ok.test' }] },
  });
  proxies.push(proxy);
  return proxy;
}

function plainRequest(
  port: number,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: PROXY_ADDRESS,
      port,
      path: url,
      headers: { host: new URL(url).host, ...headers },
      agent: false,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        responses.push(JSON.stringify(res.headers) + body);
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function httpsThrough(
  proxy: TestProxy,
  host: string,
  ca: string,
  extraHeaders = '',
): Promise<string> {
  const tunnel = await openTunnel(proxy.port, `${host}:${world.httpsPort}`);
  responses.push(tunnel.head);
  expect(tunnel.status).toBe(200);
  const { response } = await tlsExchange(
    tunnel.socket,
    { servername: host, ca },
    `GET /through HTTP/1.1\r\nHost: ${host}:${world.httpsPort}\r\n${extraHeaders}Connection: close\r\n\r\n`,
  );
  responses.push(response);
  return response;
}

async function settled(proxy: TestProxy, count: number): Promise<void> {
  for (let i = 0; i < 100 && proxy.decisions.length < count; i++)
    await new Promise((r) => setTimeout(r, 20));
}

describe('tunnels through the upstream proxy', () => {
  it('sends an allowed passthrough tunnel through CONNECT with the proxy credentials', async () => {
    const proxy = await behindCorporateProxy({ domains: ['allowed.test'] });
    const response = await httpsThrough(proxy, 'allowed.test', world.upstreamCa.certificatePem);
    expect(statusCodes(response)).toEqual([200]);
    expect(corporate.requests).toEqual([
      {
        method: 'CONNECT',
        target: `allowed.test:${world.httpsPort}`,
        authorization: `Basic ${BASIC}`,
      },
    ]);
    expect(world.requests).toMatchObject([{ scheme: 'https', url: '/through' }]);
    expect(proxy.decisions).toMatchObject([
      {
        method: 'CONNECT',
        allowed: true,
        address: SERVER_ADDRESS,
        upstreamProxy: `127.0.0.1:${corporate.port} (with credentials)`,
      },
    ]);
  });

  it('never sends a denied host to the upstream proxy', async () => {
    const proxy = await behindCorporateProxy({ domains: ['allowed.test'] });
    const tunnel = await openTunnel(proxy.port, `evil.test:${world.httpsPort}`);
    responses.push(tunnel.head);
    tunnel.socket.destroy();
    expect(tunnel.status).toBe(403);
    const plain = await plainRequest(proxy.port, `http://evil.test:${world.httpPort}/`);
    expect(plain.status).toBe(403);
    expect(corporate.requests).toEqual([]);
  });

  it('refuses an allowed name that resolves here to a refused address, before the upstream proxy', async () => {
    const proxy = await behindCorporateProxy({ domains: ['loopback.test'] });
    const plain = await plainRequest(proxy.port, `http://loopback.test:${world.httpPort}/`);
    expect(plain.status).toBe(403);
    expect(plain.body).toContain('loopback.test resolves to');
    expect(corporate.requests).toEqual([]);
  });

  it('goes direct for NO_PROXY names', async () => {
    const proxy = await behindCorporateProxy({ domains: ['a.ok.test'] });
    const response = await httpsThrough(proxy, 'a.ok.test', world.upstreamCa.certificatePem);
    expect(statusCodes(response)).toEqual([200]);
    const plain = await plainRequest(proxy.port, `http://a.ok.test:${world.httpPort}/direct`);
    expect(plain.status).toBe(200);
    expect(corporate.requests).toEqual([]);
    expect(world.requests).toHaveLength(2);
    expect(proxy.decisions.every((d) => d.upstreamProxy === undefined)).toBe(true);
  });

  it('counts a tunnel through the upstream proxy against the budget and cuts it past it', async () => {
    const proxy = await behindCorporateProxy({ domains: ['allowed.test'] }, 'native', {
      bytesIn: 50_000,
    });
    const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
    expect(tunnel.status).toBe(200);
    const { response } = await tlsExchange(
      tunnel.socket,
      { servername: 'allowed.test', ca: world.upstreamCa.certificatePem },
      `GET /bytes?n=300000 HTTP/1.1\r\nHost: allowed.test:${world.httpsPort}\r\nConnection: close\r\n\r\n`,
    );
    expect(response.length).toBeLessThan(120_000);
    expect(corporate.requests).toHaveLength(1);
    expect(proxy.decisions.at(-1)).toMatchObject({
      scheme: 'connect',
      allowed: false,
      rule: 'budget',
      reason: expect.stringContaining('the tunnel was cut') as string,
    });
  });

  it('reports the upstream proxy refusing a passthrough tunnel and closes it', async () => {
    const proxy = await behindCorporateProxy({ domains: ['allowed.test'] });
    corporate.refuseWith = 407;
    const response = await httpsThrough(proxy, 'allowed.test', world.upstreamCa.certificatePem);
    expect(response).toBe('');
    await settled(proxy, 2);
    expect(proxy.decisions.at(-1)).toMatchObject({
      allowed: false,
      rule: 'upstream-proxy',
      reason: `upstream proxy 127.0.0.1:${corporate.port} (with credentials) refused CONNECT allowed.test:${world.httpsPort}: 407 Proxy Authentication Required (check the credentials in its URL)`,
    });
    expect(world.requests).toEqual([]);
  });
});

describe.each(['native', 'node'] as const)('intercepted HTTPS on %s TLS', (interceptTls) => {
  it('sends each request through a CONNECT to the upstream proxy', async () => {
    const proxy = await behindCorporateProxy(
      { domains: ['allowed.test'], methods: ['GET'] },
      interceptTls,
    );
    // The sandbox's own Proxy-Authorization goes nowhere.
    const response = await httpsThrough(
      proxy,
      'allowed.test',
      proxy.ca?.certificatePem ?? '',
      'Proxy-Authorization: Basic c2FuZGJveDpndWVzcw==\r\n',
    );
    expect(statusCodes(response)).toEqual([200]);
    expect(corporate.requests).toEqual([
      {
        method: 'CONNECT',
        target: `allowed.test:${world.httpsPort}`,
        authorization: `Basic ${BASIC}`,
      },
    ]);
    expect(world.requests).toMatchObject([
      { scheme: 'https', url: '/through', servername: 'allowed.test' },
    ]);
    const headers = (world.requests[0] as unknown as { headers: http.IncomingHttpHeaders }).headers;
    expect(headers['proxy-authorization']).toBeUndefined();
  });

  it('reaches a name only the upstream proxy can resolve, verified against that name', async () => {
    const proxy = await behindCorporateProxy(
      { domains: [OUTSIDE_ONLY], methods: ['GET'] },
      interceptTls,
    );
    const tunnel = await openTunnel(proxy.port, `${OUTSIDE_ONLY}:${outsidePort}`);
    expect(tunnel.status).toBe(200);
    const { response } = await tlsExchange(
      tunnel.socket,
      { servername: OUTSIDE_ONLY, ca: proxy.ca?.certificatePem ?? '' },
      `GET /far HTTP/1.1\r\nHost: ${OUTSIDE_ONLY}:${outsidePort}\r\nConnection: close\r\n\r\n`,
    );
    responses.push(response);
    expect(statusCodes(response)).toEqual([200]);
    expect(response).toContain('outside /far');
    expect(corporate.requests).toMatchObject([
      { method: 'CONNECT', target: `${OUTSIDE_ONLY}:${outsidePort}` },
    ]);
    expect(proxy.decisions.map((d) => d.address)).toEqual([undefined, undefined]);
  });

  it('answers 502 naming the upstream proxy when it refuses (407, 502)', async () => {
    const proxy = await behindCorporateProxy(
      { domains: ['allowed.test'], methods: ['GET'] },
      interceptTls,
    );
    for (const status of [407, 502]) {
      corporate.refuseWith = status;
      const response = await httpsThrough(proxy, 'allowed.test', proxy.ca?.certificatePem ?? '');
      expect(statusCodes(response)).toEqual([502]);
      expect(response).toContain(
        `upstream proxy 127.0.0.1:${corporate.port} (with credentials) refused CONNECT allowed.test:${world.httpsPort}: ${status}`,
      );
      expect(proxy.decisions.at(-1)).toMatchObject({ allowed: false, rule: 'upstream-proxy' });
    }
    expect(world.requests).toEqual([]);
  });
});

describe('plain HTTP through the upstream proxy', () => {
  it('forwards in absolute form with the proxy credentials, not the sandbox ones', async () => {
    const proxy = await behindCorporateProxy({ domains: ['allowed.test'] });
    const res = await plainRequest(proxy.port, `http://allowed.test:${world.httpPort}/plain?q=1`, {
      'proxy-authorization': 'Basic c2FuZGJveDpndWVzcw==',
    });
    expect(res.status).toBe(200);
    expect(corporate.requests).toEqual([
      {
        method: 'GET',
        target: `http://allowed.test:${world.httpPort}/plain?q=1`,
        authorization: `Basic ${BASIC}`,
      },
    ]);
    expect(world.requests).toMatchObject([{ scheme: 'http', url: '/plain?q=1' }]);
  });

  it('passes a name the server cannot resolve to the upstream proxy by name', async () => {
    const proxy = await behindCorporateProxy({ domains: [OUTSIDE_ONLY] });
    const res = await plainRequest(proxy.port, `http://${OUTSIDE_ONLY}:${world.httpPort}/far`);
    expect(res.status).toBe(200);
    expect(corporate.requests).toMatchObject([
      { method: 'GET', target: `http://${OUTSIDE_ONLY}:${world.httpPort}/far` },
    ]);
    expect(proxy.decisions).toMatchObject([{ allowed: true, host: OUTSIDE_ONLY }]);
    expect(proxy.decisions[0]?.address).toBeUndefined();
  });

  it('turns the upstream proxy 407 into a clear 502 for the sandbox', async () => {
    const proxy = await behindCorporateProxy({ domains: ['allowed.test'] });
    corporate.refuseWith = 407;
    const res = await plainRequest(proxy.port, `http://allowed.test:${world.httpPort}/`);
    expect(res.status).toBe(502);
    expect(res.body).toContain(
      `upstream proxy 127.0.0.1:${corporate.port} (with credentials) refused GET`,
    );
    expect(proxy.decisions.at(-1)).toMatchObject({ allowed: false, rule: 'upstream-proxy' });
  });
});
