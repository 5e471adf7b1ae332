import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineAddresses } from '../../src/egress/machine-addresses.js';
import {
  rawExchange,
  startTestProxy,
  startTestWorld,
  statusCodes,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

/** The host's IPv4 addresses as `ip` lists them (every interface, up or not), loopback aside. */
function ipAddresses(): string[] {
  const out = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  return [...out.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)]
    .map((m) => m[1] ?? '')
    .filter((a) => a !== '' && !a.startsWith('127.'));
}

let world: TestWorld;
let proxy: TestProxy;
let hostAddress: string;

beforeAll(async () => {
  world = await startTestWorld();
  hostAddress = ipAddresses()[0] ?? '';
  // An operator allowance covering one of this machine's addresses, for the name pointed at it.
  proxy = await startTestProxy(
    world,
    { domains: ['host.test', 'allowed.test'] },
    {
      withCa: false,
      resolver: (host) =>
        host === 'host.test' ? Promise.resolve([hostAddress]) : world.resolver(host),
      guard: { allow: [{ range: `${hostAddress}/32`, hosts: ['host.test'] }] },
    },
  );
});
afterAll(async () => {
  await proxy.proxy.close();
  await world.close();
});

describe("the machine's own addresses and request-line versions", () => {
  it('machineAddresses lists every IPv4 address of every interface, whatever the link state', () => {
    expect(ipAddresses().length).toBeGreaterThan(0);
    expect(machineAddresses()).toEqual(expect.arrayContaining(ipAddresses()));
    expect(machineAddresses().some((a) => a.startsWith('127.'))).toBe(false);
  });

  it("refuses a name resolving to one of the machine's addresses, even under an allowance", async () => {
    for (const request of [
      `CONNECT host.test:${world.httpsPort} HTTP/1.1\r\nHost: host.test:${world.httpsPort}\r\n\r\n`,
      `GET http://host.test:${world.httpPort}/ HTTP/1.1\r\nHost: host.test:${world.httpPort}\r\n\r\n`,
    ]) {
      const response = await rawExchange(proxy.port, request);
      expect(statusCodes(response)).toEqual([403]);
      expect(response).toContain("the proxy's own address");
    }
    expect(proxy.decisions.map((d) => d.rule)).toEqual([
      'address:own-address',
      'address:own-address',
    ]);
  });

  it('refuses HTTP/0.9 (a target cut by CR or LF) and HTTP/2.0 request lines', async () => {
    proxy.decisions.length = 0;
    const t = `allowed.test:${world.httpsPort}`;
    for (const request of [
      `CONNECT ${t}\r\nHost: evil.test:443 HTTP/1.1\r\n\r\n`,
      `CONNECT ${t}\nX: y HTTP/1.1\r\n\r\n`,
      `CONNECT ${t} HTTP/2.0\r\n\r\n`,
      `GET http://allowed.test:${world.httpPort}/\r\nHost: allowed.test:${world.httpPort}\r\n\r\n`,
    ]) {
      const response = await rawExchange(proxy.port, request);
      expect(statusCodes(response)).toEqual([400]);
      expect(response).toContain('only HTTP/1.0 and HTTP/1.1 requests are accepted');
    }
    expect(proxy.decisions.every((d) => !d.allowed && d.rule === 'protocol')).toBe(true);
    expect(world.requests).toEqual([]);
  });
});
