import tls from 'node:tls';
import { activeTunnelRelays } from '../../src/egress/tunnel-relay.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  eagerTlsExchange,
  rawExchange,
  openTunnel,
  startTestProxy,
  startTestWorld,
  tlsExchange,
  statusCodes,
  SERVER_ADDRESS,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

// Every tunnel test runs with both relays: the native tunnel relay (the default) and Node streams
// (the fallback when the addon is not built).
describe.each(['native', 'streams'] as const)('%s relay', (tunnelRelay) => {
  let world: TestWorld;
  let proxy: TestProxy;

  beforeAll(async () => {
    world = await startTestWorld();
    proxy = await startTestProxy(
      world,
      { domains: ['allowed.test', '*.ok.test', 'loopback.test', 'rebind.test', 'mixed.test'] },
      { withCa: false, tunnelRelay },
    );
  });
  afterAll(async () => {
    await proxy.proxy.close();
    await world.close();
  });
  beforeEach(() => {
    world.requests.length = 0;
    world.canary.length = 0;
    world.lookups.length = 0;
    proxy.decisions.length = 0;
  });
  afterEach(() => {
    // Whatever a test did, nothing may have reached the canary.
    expect(world.canary).toEqual([]);
  });

  /** Waits until no native relay runs (fails after 3 s). */
  async function untilNoRelays(): Promise<void> {
    const deadline = Date.now() + 3000;
    while (activeTunnelRelays() > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(activeTunnelRelays()).toBe(0);
  }

  function connectRequest(target: string): string {
    return `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`;
  }

  describe('CONNECT tunnels (no method limits)', () => {
    it('tunnels TLS to an allowed host, verified end to end by the client', async () => {
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      expect(tunnel.status).toBe(200);
      const { response } = await tlsExchange(
        tunnel.socket,
        { servername: 'allowed.test', ca: world.upstreamCa.certificatePem },
        `POST /x HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`,
      );
      expect(statusCodes(response)).toEqual([200]);
      expect(world.requests).toMatchObject([
        { scheme: 'https', method: 'POST', servername: 'allowed.test', body: 'hi' },
      ]);
      expect(proxy.decisions).toMatchObject([
        {
          host: 'allowed.test',
          method: 'CONNECT',
          scheme: 'connect',
          allowed: true,
          rule: 'domain:allowed.test',
          address: SERVER_ADDRESS,
        },
      ]);
      expect(proxy.decisions[0]?.at).toBeInstanceOf(Date);
    });

    it.each([
      ['evil-allowed.test', 'not on the allowlist'],
      ['evilallowed.test', 'not on the allowlist'],
      ['allowed.test.evil.test', 'not on the allowlist'],
      ['sub.allowed.test', 'not on the allowlist'],
      ['ok.test', 'not on the allowlist'],
      ['xn--llowed-2nf.test', 'not on the allowlist'],
      ['allowed..test', 'invalid label'],
      ['.allowed.test', 'invalid label'],
      ['allowed.test..', 'invalid label'],
      ['127.1', 'IP literals'],
      ['2130706433', 'IP literals'],
      ['0x7f.1', 'IP literals'],
      ['127.0.0.2', 'IP literals'],
      ['[::ffff:127.0.0.1]', 'IP literals'],
      ['[::1]', 'IP literals'],
    ])(
      'refuses CONNECT %s with 403 naming the host and the reason, before resolving',
      async (host, reason) => {
        const response = await rawExchange(
          proxy.port,
          connectRequest(`${host}:${world.httpsPort}`),
        );
        expect(statusCodes(response)).toEqual([403]);
        const body = response.slice(response.indexOf('\r\n\r\n') + 4);
        expect(body).toMatch(/^berth egress: CONNECT \S+ denied: /);
        expect(body).toContain(reason);
        expect(body).toContain(host.replace(/^\[|\]$/g, '').slice(0, 6));
        expect(world.lookups).toEqual([]);
        expect(proxy.decisions).toHaveLength(1);
        expect(proxy.decisions[0]).toMatchObject({ allowed: false, method: 'CONNECT' });
      },
    );

    it('carries an established tunnel on the chosen relay', async () => {
      // The tunnels of earlier tests end on their own (the relay sees both sides close).
      await untilNoRelays();
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      const secure = tls.connect({
        socket: tunnel.socket,
        servername: 'allowed.test',
        ca: world.upstreamCa.certificatePem,
      });
      await new Promise((resolve, reject) => {
        secure.once('secureConnect', resolve);
        secure.once('error', reject);
      });
      expect(activeTunnelRelays()).toBe(tunnelRelay === 'native' ? 1 : 0);
      secure.destroy();
      // The client's close ends the relay (the relay thread sees it, the proxy closes the upstream).
      await untilNoRelays();
    });

    it('matches case-insensitively and with one trailing dot (still the same host)', async () => {
      for (const host of ['ALLOWED.Test', 'allowed.test.']) {
        const tunnel = await openTunnel(proxy.port, `${host}:${world.httpsPort}`);
        expect(tunnel.status, host).toBe(200);
        const { response } = await tlsExchange(
          tunnel.socket,
          { servername: 'allowed.test', ca: world.upstreamCa.certificatePem },
          'GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n',
        );
        expect(statusCodes(response)).toEqual([200]);
      }
      expect(proxy.decisions.map((d) => d.host)).toEqual(['allowed.test', 'allowed.test']);
    });

    it.each([
      ['userinfo', `user:pw@allowed.test:PORT`, 'userinfo'],
      ['userinfo without password', `x@allowed.test:PORT`, 'userinfo'],
      ['missing port', 'allowed.test', 'explicit port'],
      ['empty port', 'allowed.test:', 'invalid port'],
      ['signed port', 'allowed.test:+443', 'invalid port'],
      ['leading zero', 'allowed.test:0443', 'invalid port'],
      ['port out of range', 'allowed.test:70000', 'invalid port'],
      ['hex port', 'allowed.test:0x1bb', 'invalid port'],
      ['two ports', 'allowed.test:443:443', 'not allowed'],
      ['percent-encoding', 'allowed%2etest:PORT', 'not allowed'],
      ['a path', 'allowed.test:PORT/x', 'invalid port'],
      ['port 22', 'allowed.test:22', 'port 22 is not allowed'],
      ['port 80 over CONNECT', 'allowed.test:80', 'port 80 is not allowed'],
    ])('refuses a malformed or odd CONNECT target (%s)', async (_label, target, reason) => {
      const response = await rawExchange(
        proxy.port,
        connectRequest(target.replace('PORT', String(world.httpsPort))),
      );
      expect(statusCodes(response)).toEqual([403]);
      expect(response).toContain(reason);
      expect(world.lookups).toEqual([]);
      expect(proxy.decisions).toMatchObject([{ allowed: false }]);
    });

    it('refuses CR/LF and white space tricks in the request line', async () => {
      for (const text of [
        `CONNECT allowed.test:${world.httpsPort}\r evil.test:${world.httpsPort} HTTP/1.1\r\nHost: x\r\n\r\n`,
        `CONNECT evil.test:${world.httpsPort}\rallowed.test:${world.httpsPort} HTTP/1.1\r\nHost: x\r\n\r\n`,
        `CONNECT allowed.test:${world.httpsPort} evil.test:${world.httpsPort} HTTP/1.1\r\nHost: x\r\n\r\n`,
        `CONNECT allowed.test\n:${world.httpsPort} HTTP/1.1\r\nHost: x\r\n\r\n`,
        `CONNECT allowed.test%0d%0a:${world.httpsPort} HTTP/1.1\r\nHost: x\r\n\r\n`,
      ]) {
        const response = await rawExchange(proxy.port, text);
        const codes = statusCodes(response);
        expect(codes.length, JSON.stringify(text)).toBe(1);
        expect([400, 403]).toContain(codes[0]);
      }
      expect(world.lookups).toEqual([]);
      expect(world.requests).toEqual([]);
    });

    it('refuses an allowed name that resolves to a loopback address, naming it', async () => {
      const response = await rawExchange(
        proxy.port,
        connectRequest(`loopback.test:${world.httpsPort}`),
      );
      expect(statusCodes(response)).toEqual([403]);
      expect(response).toContain('loopback.test resolves to 127.0.0.9, a refused loopback address');
      expect(proxy.decisions).toMatchObject([
        { allowed: false, rule: 'address:127.0.0.0/8', address: '127.0.0.9' },
      ]);
    });

    it('dials the vetted address of the one lookup it made (DNS rebinding cannot win)', async () => {
      // The test resolver answers 127.0.0.2 (allowed for rebind.test) once, then the canary address.
      const tunnel = await openTunnel(proxy.port, `rebind.test:${world.httpsPort}`);
      expect(tunnel.status).toBe(200);
      const { response } = await tlsExchange(
        tunnel.socket,
        { servername: 'rebind.test', ca: world.upstreamCa.certificatePem },
        'GET / HTTP/1.1\r\nHost: rebind.test\r\nConnection: close\r\n\r\n',
      );
      expect(statusCodes(response)).toEqual([200]);
      expect(world.lookups).toEqual(['rebind.test']);
      expect(world.requests).toMatchObject([{ servername: 'rebind.test' }]);
      // A second tunnel: the resolver now answers the canary address, which the guard refuses.
      const second = await rawExchange(
        proxy.port,
        connectRequest(`rebind.test:${world.httpsPort}`),
      );
      expect(statusCodes(second)).toEqual([403]);
      expect(second).toContain('127.0.0.9');
    });

    it('uses the first vetted address when a name has several', async () => {
      // mixed.test resolves to [127.0.0.9, 127.0.0.2]; only 127.0.0.2 is allowed for it.
      const tunnel = await openTunnel(proxy.port, `mixed.test:${world.httpsPort}`);
      expect(tunnel.status).toBe(200);
      expect(proxy.decisions).toMatchObject([
        { host: 'mixed.test', allowed: true, address: SERVER_ADDRESS },
      ]);
      tunnel.socket.destroy();
    });

    it('delivers every byte when the upstream closes while the client is still reading', async () => {
      // The upstream sends a large body and closes; the client reads slowly in the second half, so
      // the proxy may still hold the end of the body when the upstream's close arrives. (The
      // benchmark once lost the last 16 KB this way when the tunnel destroyed both sides on close.)
      const size = 8 * 1024 * 1024;
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      const received = await new Promise<number>((resolve, reject) => {
        const secure = tls.connect({
          socket: tunnel.socket,
          servername: 'allowed.test',
          ca: world.upstreamCa.certificatePem,
        });
        let bytes = 0;
        secure.on('secureConnect', () =>
          secure.write(
            `GET /bytes?n=${size} HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n`,
          ),
        );
        secure.on('data', (d: Buffer) => {
          bytes += d.length;
          // A slow reader in the last part, so the proxy's queue towards it stays full.
          if (bytes > size / 2) {
            secure.pause();
            setTimeout(() => secure.resume(), 2);
          }
        });
        secure.on('end', () => resolve(bytes));
        secure.on('error', reject);
      });
      expect(received).toBeGreaterThan(size);
    });

    it('handles a ClientHello sent together with the CONNECT', async () => {
      const { head, response } = await eagerTlsExchange(
        proxy.port,
        `allowed.test:${world.httpsPort}`,
        { servername: 'allowed.test', ca: world.upstreamCa.certificatePem },
        'GET /eager HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n',
      );
      expect(head).toMatch(/^HTTP\/1\.1 200/);
      expect(statusCodes(response)).toEqual([200]);
      expect(world.requests).toMatchObject([{ url: '/eager', servername: 'allowed.test' }]);
    });

    it('refuses non-TLS bytes (an SSH banner) in a tunnel without dialling', async () => {
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      expect(tunnel.status).toBe(200);
      tunnel.socket.write('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
      await new Promise((resolve) => tunnel.socket.once('close', resolve));
      expect(world.requests).toEqual([]);
      expect(proxy.decisions.at(-1)).toMatchObject({
        allowed: false,
        rule: 'tunnel',
        reason: 'the first bytes are not a TLS handshake',
      });
    });

    it('refuses plain HTTP sent into a tunnel', async () => {
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      tunnel.socket.write('GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
      await new Promise((resolve) => tunnel.socket.once('close', resolve));
      expect(proxy.decisions.at(-1)).toMatchObject({ allowed: false, rule: 'tunnel' });
    });

    it('refuses a ClientHello whose SNI differs from the CONNECT host', async () => {
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      const result = await tlsExchange(
        tunnel.socket,
        { servername: 'evil.test', ca: world.upstreamCa.certificatePem },
        'GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n',
      );
      expect(result.response).toBe('');
      expect(result.error).toBeDefined();
      expect(proxy.decisions.at(-1)).toMatchObject({
        allowed: false,
        rule: 'tunnel',
        reason: 'TLS SNI "evil.test" differs from the CONNECT host',
      });
      expect(world.requests).toEqual([]);
    });

    it('refuses a ClientHello without SNI', async () => {
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      // Node sends no SNI when servername is an empty string... use an IP-like name which it omits.
      const result = await tlsExchange(
        tunnel.socket,
        { servername: '', ca: world.upstreamCa.certificatePem },
        'GET / HTTP/1.1\r\n\r\n',
      );
      expect(result.response).toBe('');
      expect(proxy.decisions.at(-1)).toMatchObject({
        allowed: false,
        reason: 'TLS ClientHello without SNI',
      });
    });

    it('refuses a tunnel that stays silent', async () => {
      const tunnel = await openTunnel(proxy.port, `allowed.test:${world.httpsPort}`);
      await new Promise((resolve) => tunnel.socket.once('close', resolve));
      expect(proxy.decisions.at(-1)).toMatchObject({
        allowed: false,
        reason: 'no TLS ClientHello received in time',
      });
    });
  });
});
