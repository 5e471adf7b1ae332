import { spawn } from 'node:child_process';
import http from 'node:http';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { activeTlsLegs } from '../../src/egress/native-tls-leg.js';
import { sha } from './support/sockets.js';
import {
  openTunnel,
  patternBytes,
  startTestProxy,
  startTestWorld,
  tlsExchange,
  statusCodes,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

/** A loopback address of its own for a server in another process. */
const REMOTE_ADDRESS = '127.0.0.7';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

// How intercepted responses come back, whatever their framing, on both places TLS can run.
describe.each(['native', 'node'] as const)('intercepted responses, TLS on %s', (interceptTls) => {
  let world: TestWorld;
  let limited: TestProxy;
  let impatient: TestProxy;
  const clients: Array<() => void> = [];

  beforeAll(async () => {
    world = await startTestWorld();
    limited = await startTestProxy(
      world,
      { domains: ['allowed.test', 'other-allowed.test'], methods: ['GET', 'HEAD'] },
      { interceptTls },
    );
    impatient = await startTestProxy(
      world,
      { domains: ['allowed.test'], methods: ['GET'] },
      { interceptTls, idleTimeoutMs: 1000 },
    );
  });
  afterAll(async () => {
    await Promise.all([limited.proxy.close(), impatient.proxy.close()]);
    await world.close();
  });
  beforeEach(() => {
    world.requests.length = 0;
  });
  afterEach(() => {
    for (const close of clients.splice(0)) close();
    expect(world.canary).toEqual([]);
  });

  /** An HTTP client that sends every request through one intercepted tunnel. */
  async function tunnelClient(host = 'allowed.test', proxy = limited) {
    const tunnel = await openTunnel(proxy.port, `${host}:${world.httpsPort}`);
    expect(tunnel.status).toBe(200);
    const secure = tls.connect({
      socket: tunnel.socket,
      servername: host,
      ca: proxy.ca?.certificatePem ?? '',
      ALPNProtocols: ['http/1.1'],
    });
    secure.on('error', () => undefined);
    await new Promise((resolve) => secure.once('secureConnect', resolve));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let handed = false;
    (agent as unknown as { createConnection: () => tls.TLSSocket }).createConnection = () => {
      if (handed) throw new Error('the tunnel is closed');
      handed = true;
      return secure;
    };
    clients.push(() => {
      agent.destroy();
      secure.destroy();
    });
    const request = (path: string, method = 'GET') =>
      new Promise<Answer>((resolve, reject) => {
        const req = http.request(
          {
            agent,
            host,
            port: world.httpsPort,
            path,
            method,
            headers: { host: `${host}:${world.httpsPort}` },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (d: Buffer) => chunks.push(d));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                headers: res.headers,
                body: Buffer.concat(chunks),
              }),
            );
            res.on('error', reject);
            res.on('aborted', () => reject(new Error('aborted')));
          },
        );
        req.on('error', reject);
        req.end();
      });
    return { request, secure };
  }

  it('passes a 16 MB body of known length byte for byte, then the next request', async () => {
    const client = await tunnelClient();
    const n = 16 * 1024 * 1024;
    const big = await client.request(`/bytes?n=${n}`);
    expect(big.status).toBe(200);
    expect(big.headers['content-length']).toBe(String(n));
    expect(sha(big.body)).toBe(sha(Buffer.alloc(n, 0x61)));
    const next = await client.request('/after');
    expect(JSON.parse(next.body.toString())).toMatchObject({ url: '/after' });
  });

  it('passes a chunked body exactly and keeps the tunnel usable', async () => {
    const client = await tunnelClient();
    const answer = await client.request('/chunked?n=300001');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-length']).toBeUndefined();
    expect(sha(answer.body)).toBe(sha(patternBytes(300_001)));
    expect((await client.request('/after')).status).toBe(200);
  });

  it('passes a body that ends when the server closes', async () => {
    const client = await tunnelClient();
    const answer = await client.request('/close?n=200003');
    expect(answer.status).toBe(200);
    expect(sha(answer.body)).toBe(sha(patternBytes(200_003)));
  });

  it('answers HEAD, 204 and 304 without a body and goes on', async () => {
    const client = await tunnelClient();
    const head = await client.request('/bytes?n=1000', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('1000');
    expect(head.body.length).toBe(0);
    expect((await client.request('/status?code=204')).status).toBe(204);
    expect((await client.request('/status?code=304')).status).toBe(304);
    const last = await client.request('/last');
    expect(JSON.parse(last.body.toString())).toMatchObject({ url: '/last' });
  });

  it('never hands over a truncated body as complete: the tunnel closes', async () => {
    const client = await tunnelClient();
    await expect(client.request('/truncate?n=1000000')).rejects.toThrow();
  });

  it('answers 502 to a response with conflicting lengths (native) or closes (Node)', async () => {
    const tunnel = await openTunnel(limited.port, `allowed.test:${world.httpsPort}`);
    const { response } = await tlsExchange(
      tunnel.socket,
      { servername: 'allowed.test', ca: limited.ca?.certificatePem ?? '' },
      `GET /two-lengths HTTP/1.1\r\nHost: allowed.test:${world.httpsPort}\r\n\r\n`,
    );
    // Node's HTTP client refuses the response too; neither passes "hello" on.
    expect(response).not.toContain('hello');
    if (interceptTls === 'native') expect(statusCodes(response)).toEqual([502]);
  });

  it('answers pipelined requests in order, each with its whole body', async () => {
    const tunnel = await openTunnel(limited.port, `allowed.test:${world.httpsPort}`);
    const h = `Host: allowed.test:${world.httpsPort}\r\n`;
    const { response } = await tlsExchange(
      tunnel.socket,
      { servername: 'allowed.test', ca: limited.ca?.certificatePem ?? '' },
      `GET /bytes?n=70000 HTTP/1.1\r\n${h}\r\nGET /chunked?n=5000 HTTP/1.1\r\n${h}\r\nGET /third HTTP/1.1\r\n${h}Connection: close\r\n\r\n`,
    );
    expect(statusCodes(response)).toEqual([200, 200, 200]);
    const first = response.indexOf('a'.repeat(70_000));
    const third = response.indexOf('"url":"/third"');
    expect(first).toBeGreaterThan(0);
    expect(third).toBeGreaterThan(first + 70_000);
    expect(world.requests.map((r) => r.url)).toEqual([
      '/bytes?n=70000',
      '/chunked?n=5000',
      '/third',
    ]);
  });

  it('reuses the upstream connection within a tunnel, never across names', async () => {
    const one = await tunnelClient('allowed.test');
    await one.request('/1');
    await one.request('/2');
    const other = await tunnelClient('other-allowed.test');
    await other.request('/3');
    const [first, second, third] = world.requests;
    expect(first?.remotePort).toBe(second?.remotePort);
    // Both names lead to the same address; the second name's request went on its own
    // connection, verified for that name.
    expect(third?.servername).toBe('other-allowed.test');
    expect(third?.remotePort).not.toBe(first?.remotePort);
    if (interceptTls === 'native') expect(activeTlsLegs()).toBeGreaterThanOrEqual(3);
  });

  it('keeps a body that is still moving past the idle time, and ends one that stalled', async () => {
    const slow = await (
      await tunnelClient('allowed.test', impatient)
    ).request('/slow?n=100000&ms=2500');
    expect(sha(slow.body)).toBe(sha(patternBytes(100_000)));
    const started = Date.now();
    await expect(
      (await tunnelClient('allowed.test', impatient)).request('/slow?n=100000&ms=500&stall=1'),
    ).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('answers 502 when the upstream does not answer in time', async () => {
    const quick = await startTestProxy(
      world,
      { domains: ['allowed.test'], methods: ['GET'] },
      { interceptTls, connectTimeoutMs: 1000 },
    );
    clients.push(() => void quick.proxy.close());
    const tunnel = await openTunnel(quick.port, `allowed.test:${world.httpsPort}`);
    // The exchange ends after 3 s of silence: the 502 must come before (1 s, not the default 15).
    const { response } = await tlsExchange(
      tunnel.socket,
      { servername: 'allowed.test', ca: quick.ca?.certificatePem ?? '' },
      `GET /hang HTTP/1.1\r\nHost: allowed.test:${world.httpsPort}\r\n\r\n`,
      3000,
    );
    expect(statusCodes(response)).toEqual([502]);
    expect(response).toMatch(/did not answer in time|timed out/);
  });

  it('answers every one of many tunnels in a row, the upstream in another process', async () => {
    // A server in its own process answers while the proxy's thread is still busy with the
    // request it just sent (in this process it could only answer afterwards): a pooled
    // connection must then still deliver the answer's head alone.
    const leaf = await world.upstreamCa.leafFor('remote.test');
    const server = spawn(
      process.execPath,
      [
        '-e',
        `const https = require('node:https');
         const s = https.createServer({ key: process.env.KEY, cert: process.env.CERT }, (req, res) => {
           req.resume();
           req.on('end', () => { res.writeHead(200, { 'content-length': 2 }); res.end('ok'); });
         });
         s.listen(0, '${REMOTE_ADDRESS}', () => console.log(s.address().port));`,
      ],
      {
        env: { KEY: leaf.privateKeyPem, CERT: leaf.certificatePem },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    clients.push(() => server.kill());
    const port = Number(
      await new Promise<string>((resolve) =>
        server.stdout.once('data', (d: Buffer) => resolve(d.toString())),
      ),
    );
    const remote = await startTestProxy(
      world,
      { domains: ['remote.test'], methods: ['GET'] },
      {
        interceptTls,
        resolver: (host) => Promise.resolve(host === 'remote.test' ? [REMOTE_ADDRESS] : []),
        guard: { allow: [{ range: `${REMOTE_ADDRESS}/32`, hosts: ['remote.test'] }] },
        extraTunnelPorts: [port],
      },
    );
    clients.push(() => void remote.proxy.close());
    const statuses: number[] = [];
    // Each exchange ends when the proxy closes the tunnel after the answer (Connection: close);
    // the quiet time only bounds a hang (a short one failed on a loaded machine, where the
    // answer can take longer than 50 ms to come).
    for (let i = 0; i < 80; i++) {
      const tunnel = await openTunnel(remote.port, `remote.test:${port}`);
      const { response } = await tlsExchange(
        tunnel.socket,
        { servername: 'remote.test', ca: remote.ca?.certificatePem ?? '' },
        `GET /${i} HTTP/1.1\r\nHost: remote.test:${port}\r\nConnection: close\r\n\r\n`,
        10_000,
      );
      statuses.push(...statusCodes(response));
    }
    expect(statuses).toEqual(Array.from({ length: 80 }, () => 200));
  });
});
