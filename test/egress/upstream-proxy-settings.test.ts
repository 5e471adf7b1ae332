import { describe, expect, it } from 'vitest';
import {
  bypassesProxy,
  describeUpstreamProxy,
  parseNoProxy,
  parseUpstreamProxyUrl,
  upstreamProxyFor,
  upstreamProxyFromEnvironment,
} from '../../src/egress/upstream-proxy.js';

describe('upstream proxy settings from the server environment', () => {
  it('is undefined without a proxy variable', () => {
    expect(upstreamProxyFromEnvironment({ NO_PROXY: 'x.test' })).toBeUndefined();
    expect(upstreamProxyFromEnvironment({ HTTPS_PROXY: '  ' })).toBeUndefined();
  });

  it('reads HTTPS_PROXY and HTTP_PROXY (lower case first) and NO_PROXY', () => {
    const settings = upstreamProxyFromEnvironment({
      HTTPS_PROXY: 'http://upper.test:1',
      https_proxy: 'http://lower.test:3128',
      HTTP_PROXY: 'plain.test:8080',
      NO_PROXY: '.internal.test, localhost,*.corp.test,svc.test:8443',
    });
    expect(settings?.https).toEqual({ host: 'lower.test', port: 3128 });
    expect(settings?.http).toEqual({ host: 'plain.test', port: 8080 });
    expect(settings?.noProxy).toEqual([
      { name: 'internal.test' },
      { name: 'localhost' },
      { name: 'corp.test' },
      { name: 'svc.test', port: 8443 },
    ]);
  });

  it('lets BERTH_UPSTREAM_PROXY win for both schemes', () => {
    const settings = upstreamProxyFromEnvironment({
      BERTH_UPSTREAM_PROXY: 'http://berth.test:3128',
      HTTPS_PROXY: 'http://other.test:1',
    });
    expect(settings?.https?.host).toBe('berth.test');
    expect(settings?.http?.host).toBe('berth.test');
  });

  it('turns user:password into a Proxy-Authorization value that does not serialise', () => {
    const proxy = parseUpstreamProxyUrl('http://us%40er:p%3Ass@proxy.test:3128', 'HTTPS_PROXY');
    expect(proxy.authorization).toBe(`Basic ${Buffer.from('us@er:p:ss').toString('base64')}`);
    expect(JSON.stringify(proxy)).toBe('{"host":"proxy.test","port":3128}');
    expect(describeUpstreamProxy({ https: proxy, noProxy: [] })).toBe(
      'HTTPS and tunnels via proxy.test:3128 (with credentials)',
    );
  });

  it.each([
    ['https://user:hunter2@proxy.test:443', 'only an http:// upstream proxy is supported'],
    ['socks5://user:hunter2@proxy.test:1080', 'only an http:// upstream proxy is supported'],
    ['http://user:hunter2@proxy.test:3128/path', 'must be http://'],
    ['http://user:hunter2@:3128', 'is not a URL'],
  ])('refuses %s without repeating it', (value, message) => {
    let error: unknown;
    try {
      parseUpstreamProxyUrl(value, 'HTTPS_PROXY');
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain('hunter2');
  });
});

describe('NO_PROXY', () => {
  const entries = parseNoProxy('corp.test,svc.test:8443');
  it('matches a name, its subdomains and the port when given', () => {
    expect(bypassesProxy(entries, 'corp.test', 443)).toBe(true);
    expect(bypassesProxy(entries, 'api.corp.test', 80)).toBe(true);
    expect(bypassesProxy(entries, 'notcorp.test', 443)).toBe(false);
    expect(bypassesProxy(entries, 'svc.test', 8443)).toBe(true);
    expect(bypassesProxy(entries, 'svc.test', 443)).toBe(false);
  });
  it('with * sends nothing through the proxy', () => {
    const settings = upstreamProxyFromEnvironment({ HTTPS_PROXY: 'p.test:1', NO_PROXY: '*' });
    expect(upstreamProxyFor(settings, 'https', 'any.test', 443)).toBeUndefined();
  });
  it('picks the proxy by scheme', () => {
    const settings = upstreamProxyFromEnvironment({ HTTPS_PROXY: 'p.test:1' });
    expect(upstreamProxyFor(settings, 'https', 'any.test', 443)?.host).toBe('p.test');
    expect(upstreamProxyFor(settings, 'http', 'any.test', 80)).toBeUndefined();
  });
});
