import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  rawExchange,
  startTestProxy,
  startTestWorld,
  statusCodes,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

let world: TestWorld;
let onProxy: TestProxy;
let selfProxy: TestProxy;

beforeAll(async () => {
  world = await startTestWorld();
  onProxy = await startTestProxy(world, { access: 'on' }, { withCa: false });
  // A resolver that points "self.test" at the proxy itself; the allowance would permit all of 127/8 for it.
  selfProxy = await startTestProxy(
    world,
    { domains: ['self.test'] },
    {
      withCa: false,
      resolver: (host) =>
        host === 'self.test' ? Promise.resolve(['127.0.0.1']) : Promise.reject(new Error('no')),
      guard: { allow: [{ range: '127.0.0.0/8', hosts: ['self.test'] }] },
    },
  );
});
afterAll(async () => {
  await Promise.all([onProxy, selfProxy].map((p) => p.proxy.close()));
  await world.close();
});

describe('address checks in every policy', () => {
  it('access "on" still refuses a name that resolves to a non-public address (default guard)', async () => {
    const response = await rawExchange(
      onProxy.port,
      `CONNECT loopback.test:${world.httpsPort} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    expect(statusCodes(response)).toEqual([403]);
    expect(response).toContain('a refused loopback address');
    expect(onProxy.decisions).toMatchObject([
      { host: 'loopback.test', allowed: false, address: '127.0.0.9' },
    ]);
    expect(world.canary).toEqual([]);
  });

  it('access "on" allows names the test allowances permit, and logs them', async () => {
    const response = await rawExchange(
      onProxy.port,
      `GET http://allowed.test:${world.httpPort}/ HTTP/1.1\r\nHost: allowed.test:${world.httpPort}\r\nConnection: close\r\n\r\n`,
    );
    expect(statusCodes(response)).toEqual([200]);
    expect(onProxy.decisions.at(-1)).toMatchObject({
      host: 'allowed.test',
      allowed: true,
      rule: 'access:on',
    });
  });

  it("never dials the proxy's own address, even when an allowance covers it", async () => {
    const response = await rawExchange(
      selfProxy.port,
      `CONNECT self.test:${world.httpsPort} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    expect(statusCodes(response)).toEqual([403]);
    expect(response).toContain("the proxy's own address");
  });
});
