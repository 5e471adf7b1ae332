import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  eagerTlsExchange,
  openTunnel,
  rawExchange,
  startTestProxy,
  startTestWorld,
  statusCodes,
  tlsExchange,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

// Every case runs on both places TLS can run: the addon's native legs (the default) and Node's
// TLS sockets (the fallback when the addon is not built).
describe.each(['native', 'node'] as const)('TLS on %s', (interceptTls) => {
  let world: TestWorld;
  let limited: TestProxy;
  let noCa: TestProxy;

  beforeAll(async () => {
    world = await startTestWorld();
    limited = await startTestProxy(
      world,
      {
        domains: ['allowed.test', 'pinned.test', 'untrusted.test', 'other-allowed.test'],
        methods: ['GET', 'HEAD', 'OPTIONS'],
        tunnelOnly: ['pinned.test'],
      },
      { interceptTls },
    );
    noCa = await startTestProxy(
      world,
      { domains: ['allowed.test'], methods: ['GET'] },
      { withCa: false, interceptTls },
    );
  });
  afterAll(async () => {
    await Promise.all([limited, noCa].map((p) => p.proxy.close()));
    await world.close();
  });
  beforeEach(() => {
    world.requests.length = 0;
    world.canary.length = 0;
    world.lookups.length = 0;
    limited.decisions.length = 0;
  });
  afterEach(() => {
    expect(world.canary).toEqual([]);
  });

  async function intercepted(text: string, host = 'allowed.test', alpn?: string[]) {
    const tunnel = await openTunnel(limited.port, `${host}:${world.httpsPort}`);
    expect(tunnel.status).toBe(200);
    return tlsExchange(
      tunnel.socket,
      { servername: host, ca: limited.ca?.certificatePem ?? '', ...(alpn ? { alpn } : {}) },
      text,
    );
  }

  async function lastDecisionSettled(): Promise<void> {
    for (let i = 0; i < 50 && limited.decisions.at(-1)?.allowed !== false; i++)
      await new Promise((r) => setTimeout(r, 20));
  }

  const H = () => `Host: allowed.test:${world.httpsPort}\r\n`;

  describe('TLS interception with method limits', () => {
    it('serves an allowed GET with a certificate from the environment CA and verifies the upstream', async () => {
      const tunnel = await openTunnel(limited.port, `allowed.test:${world.httpsPort}`);
      const issuer = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({
          socket: tunnel.socket,
          servername: 'allowed.test',
          ca: limited.ca?.certificatePem ?? '',
          ALPNProtocols: ['http/1.1'],
        });
        s.on('secureConnect', () => {
          const cert = s.getPeerCertificate();
          expect(s.alpnProtocol).toBe('http/1.1');
          expect(cert.subjectaltname).toBe('DNS:allowed.test');
          s.write(`GET /inside HTTP/1.1\r\n${H()}Connection: close\r\n\r\n`);
          s.on('data', () => undefined);
          s.on('end', () => resolve(String(cert.issuer.CN)));
        });
        s.on('error', reject);
      });
      expect(issuer).toBe('env_test');
      expect(world.requests).toMatchObject([
        {
          scheme: 'https',
          method: 'GET',
          url: '/inside',
          servername: 'allowed.test',
          host: `allowed.test:${world.httpsPort}`,
        },
      ]);
      expect(limited.decisions).toMatchObject([
        {
          method: 'CONNECT',
          scheme: 'connect',
          allowed: true,
          reason: 'allowed; methods are checked',
        },
        {
          method: 'GET',
          scheme: 'https',
          allowed: true,
          host: 'allowed.test',
          address: '127.0.0.2',
        },
      ]);
    });

    it.each(['POST', 'PUT', 'PATCH', 'DELETE', 'PROPFIND', 'PURGE'])(
      'refuses %s inside the tunnel',
      async (method) => {
        const { response } = await intercepted(
          `${method} /x HTTP/1.1\r\n${H()}Content-Length: 2\r\n\r\nhi`,
        );
        expect(statusCodes(response)).toEqual([403]);
        expect(response).toContain(
          `berth egress: ${method} allowed.test:${world.httpsPort} denied: method not allowed (allowed: GET, HEAD, OPTIONS)`,
        );
        expect(world.requests).toEqual([]);
        expect(limited.decisions.at(-1)).toMatchObject({
          method,
          scheme: 'https',
          allowed: false,
          rule: 'method',
        });
      },
    );

    it('refuses a GET with a body', async () => {
      const { response } = await intercepted(
        `GET / HTTP/1.1\r\n${H()}Content-Length: 5\r\n\r\nhello`,
      );
      expect(statusCodes(response)).toEqual([403]);
      expect(response).toContain('a body on GET is not allowed');
      expect(world.requests).toEqual([]);
    });

    it('checks each pipelined request: GET then POST in one write', async () => {
      const { response } = await intercepted(
        `GET /one HTTP/1.1\r\n${H()}\r\nPOST /two HTTP/1.1\r\n${H()}Content-Length: 3\r\n\r\nabc`,
      );
      expect(statusCodes(response)).toEqual([200, 403]);
      expect(world.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /one']);
    });

    it('refuses smuggling inside the tunnel (CL+TE, repeated Content-Length)', async () => {
      const a = await intercepted(
        `GET /a HTTP/1.1\r\n${H()}Content-Length: 0\r\nContent-Length: 40\r\n\r\nPOST /b HTTP/1.1\r\n${H()}\r\n`,
      );
      expect(statusCodes(a.response)[0]).toBe(400);
      const b = await intercepted(
        `GET /a HTTP/1.1\r\n${H()}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /b HTTP/1.1\r\n${H()}\r\n`,
      );
      expect(statusCodes(b.response)[0]).toBe(400);
      expect(world.requests).toEqual([]);
    });

    it('refuses a Host header that differs from the CONNECT host', async () => {
      for (const host of ['other-allowed.test', `evil.test:${world.httpsPort}`, `allowed.test:1`]) {
        const { response } = await intercepted(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        expect(statusCodes(response), host).toEqual([403]);
        expect(response).toContain('the Host header differs from the CONNECT host');
      }
      const missing = await intercepted('GET / HTTP/1.0\r\n\r\n');
      expect(statusCodes(missing.response)).toEqual([403]);
      expect(world.requests).toEqual([]);
    });

    it('refuses an absolute URL inside the tunnel', async () => {
      const { response } = await intercepted(
        `GET https://other-allowed.test:${world.httpsPort}/ HTTP/1.1\r\n${H()}\r\n`,
      );
      expect(statusCodes(response)).toEqual([403]);
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
    ])('refuses a %s upgrade inside the tunnel', async (_label, headers) => {
      const { response } = await intercepted(`GET / HTTP/1.1\r\n${H()}${headers}\r\n`);
      expect(statusCodes(response)).toEqual([403]);
      expect(response).toContain('protocol upgrades');
      expect(world.requests).toEqual([]);
    });

    it('refuses a nested CONNECT', async () => {
      const { response } = await intercepted(
        `CONNECT evil.test:${world.httpsPort} HTTP/1.1\r\nHost: evil.test:${world.httpsPort}\r\n\r\n`,
      );
      expect(statusCodes(response)).toEqual([403]);
      expect(response).toContain('CONNECT inside a tunnel is not allowed');
    });

    it.each(['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override'])(
      'refuses the method-override header %s',
      async (header) => {
        const { response } = await intercepted(`GET / HTTP/1.1\r\n${H()}${header}: DELETE\r\n\r\n`);
        expect(statusCodes(response)).toEqual([403]);
        expect(world.requests).toEqual([]);
      },
    );

    it('refuses a client that offers only h2 (ALPN http/1.1 is required)', async () => {
      const result = await intercepted(`GET / HTTP/1.1\r\n${H()}\r\n`, 'allowed.test', ['h2']);
      expect(result.response).toBe('');
      await lastDecisionSettled();
      expect(limited.decisions.at(-1)).toMatchObject({
        allowed: false,
        rule: 'tunnel',
        reason: expect.stringContaining('ALPN') as unknown,
      });
    });

    it('refuses non-TLS bytes (an SSH banner) in an intercepted tunnel', async () => {
      const tunnel = await openTunnel(limited.port, `allowed.test:${world.httpsPort}`);
      tunnel.socket.write('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
      tunnel.socket.on('data', () => undefined);
      tunnel.socket.on('error', () => undefined);
      await new Promise((resolve) => tunnel.socket.once('close', resolve));
      expect(world.requests).toEqual([]);
      expect(limited.decisions.at(-1)).toMatchObject({
        allowed: false,
        rule: 'tunnel',
        reason: 'the first bytes are not a TLS handshake',
      });
    });

    it('refuses SNI that differs from the CONNECT host, and a missing SNI', async () => {
      const a = await openTunnel(limited.port, `allowed.test:${world.httpsPort}`);
      const mismatch = await tlsExchange(
        a.socket,
        { servername: 'other-allowed.test', ca: limited.ca?.certificatePem ?? '' },
        'GET / HTTP/1.1\r\nHost: other-allowed.test\r\n\r\n',
      );
      expect(mismatch.response).toBe('');
      await lastDecisionSettled();
      expect(limited.decisions.at(-1)).toMatchObject({
        allowed: false,
        rule: 'tunnel',
        reason: 'TLS SNI "other-allowed.test" differs from the CONNECT host',
      });
      const b = await openTunnel(limited.port, `allowed.test:${world.httpsPort}`);
      // The client accepts any certificate here so that it completes the handshake without SNI.
      const missing = await tlsExchange(
        b.socket,
        { servername: '', ca: limited.ca?.certificatePem ?? '', anyCertificate: true },
        `GET / HTTP/1.1\r\n${H()}\r\n`,
      );
      expect(missing.response).toBe('');
      await lastDecisionSettled();
      expect(limited.decisions.at(-1)).toMatchObject({
        allowed: false,
        rule: 'tunnel',
        reason: 'TLS ClientHello without SNI',
      });
      expect(world.requests).toEqual([]);
    });

    it('handles a ClientHello sent together with the CONNECT', async () => {
      const { head, response } = await eagerTlsExchange(
        limited.port,
        `allowed.test:${world.httpsPort}`,
        { servername: 'allowed.test', ca: limited.ca?.certificatePem ?? '' },
        `GET /eager HTTP/1.1\r\n${H()}\r\nPOST /eager HTTP/1.1\r\n${H()}Content-Length: 1\r\n\r\nx`,
      );
      expect(head).toMatch(/^HTTP\/1\.1 200/);
      expect(statusCodes(response)).toEqual([200, 403]);
      expect(world.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /eager']);
    });

    it('answers 502 when the upstream certificate is not trusted for the name', async () => {
      const tunnel = await openTunnel(limited.port, `untrusted.test:${world.httpsPort}`);
      const { response } = await tlsExchange(
        tunnel.socket,
        { servername: 'untrusted.test', ca: limited.ca?.certificatePem ?? '' },
        `GET / HTTP/1.1\r\nHost: untrusted.test:${world.httpsPort}\r\nConnection: close\r\n\r\n`,
      );
      expect(statusCodes(response)).toEqual([502]);
      expect(world.requests).toEqual([]);
    });

    it('passes tunnelOnly hosts through untouched (the client sees the upstream certificate)', async () => {
      const tunnel = await openTunnel(limited.port, `pinned.test:${world.httpsPort}`);
      const { response } = await tlsExchange(
        tunnel.socket,
        { servername: 'pinned.test', ca: world.upstreamCa.certificatePem },
        `POST / HTTP/1.1\r\nHost: pinned.test\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`,
      );
      expect(statusCodes(response)).toEqual([200]);
      expect(world.requests).toMatchObject([{ method: 'POST', servername: 'pinned.test' }]);
    });

    it('a redirect to a refused host is refused when the client follows it', async () => {
      const target = `https://evil.test:${world.httpsPort}/stolen`;
      const { response } = await intercepted(
        `GET /redirect?to=${encodeURIComponent(target)} HTTP/1.1\r\n${H()}Connection: close\r\n\r\n`,
      );
      expect(statusCodes(response)).toEqual([302]);
      expect(response).toContain(`location: ${target}`);
      const follow = await rawExchange(
        limited.port,
        `CONNECT evil.test:${world.httpsPort} HTTP/1.1\r\nHost: evil.test:${world.httpsPort}\r\n\r\n`,
      );
      expect(statusCodes(follow)).toEqual([403]);
      expect(follow).toContain('evil.test is not on the allowlist');
    });

    it('refuses method-limited tunnels when no CA is configured', async () => {
      const response = await rawExchange(
        noCa.port,
        `CONNECT allowed.test:${world.httpsPort} HTTP/1.1\r\nHost: allowed.test:${world.httpsPort}\r\n\r\n`,
      );
      expect(statusCodes(response)).toEqual([403]);
      expect(response).toContain('no CA');
    });
  });
});
