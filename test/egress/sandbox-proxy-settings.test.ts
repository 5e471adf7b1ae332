import { describe, expect, it } from 'vitest';
import { sandboxProxySettings } from '../../src/egress/sandbox-proxy-settings.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('sandboxProxySettings', () => {
  const settings = sandboxProxySettings({
    proxyUrl: 'http://172.30.0.1:3128',
    caCertificatePem: PEM,
  });

  it('sets the proxy in both cases and for npm, cargo and Java', () => {
    for (const name of [
      'HTTP_PROXY',
      'HTTPS_PROXY',
      'http_proxy',
      'https_proxy',
      'npm_config_proxy',
      'npm_config_https_proxy',
      'CARGO_HTTP_PROXY',
    ]) {
      expect(settings.env[name], name).toBe('http://172.30.0.1:3128');
    }
    expect(settings.env.NO_PROXY).toBe('localhost,127.0.0.1,::1');
    expect(settings.env.no_proxy).toBe(settings.env.NO_PROXY);
    expect(settings.env.JAVA_TOOL_OPTIONS).toBe(
      '-Dhttp.proxyHost=172.30.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=172.30.0.1 -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.0.0.1',
    );
  });

  it('points every tool at the CA or the combined bundle', () => {
    expect(settings.env.NODE_USE_ENV_PROXY).toBe('1');
    for (const name of [
      'NODE_EXTRA_CA_CERTS',
      'SSL_CERT_FILE',
      'REQUESTS_CA_BUNDLE',
      'CURL_CA_BUNDLE',
      'GIT_SSL_CAINFO',
      'PIP_CERT',
      'CARGO_HTTP_CAINFO',
      'npm_config_cafile',
    ]) {
      expect(settings.env[name], name).toBe('/etc/berth/ca-bundle.pem');
    }
  });

  it('writes the CA certificate and an apt proxy configuration, and builds the bundle without a shell splice', () => {
    expect(settings.files.map((f) => f.path)).toEqual([
      '/usr/local/share/ca-certificates/berth-egress-ca.crt',
      '/etc/apt/apt.conf.d/95berth-egress-proxy',
    ]);
    expect(settings.files[0]?.content).toBe(PEM);
    expect(settings.files[1]?.content).toContain('Acquire::http::Proxy "http://172.30.0.1:3128";');
    expect(settings.files[1]?.content).toContain('Acquire::https::Proxy "http://172.30.0.1:3128";');
    expect(settings.commands.flat()).not.toContain('update-ca-certificates');
    expect(settings.commands[1]?.slice(-4)).toEqual([
      '/etc/ssl/certs/ca-certificates.crt',
      '/usr/local/share/ca-certificates/berth-egress-ca.crt',
      '/etc/berth/ca-bundle.pem',
      '/etc/berth/egress-ca.pem',
    ]);
  });

  it('refuses bad input', () => {
    expect(() => sandboxProxySettings({ proxyUrl: 'https://x:1', caCertificatePem: PEM })).toThrow(
      /proxyUrl/,
    );
    expect(() =>
      sandboxProxySettings({ proxyUrl: 'http://x:1"\nAcquire::x', caCertificatePem: PEM }),
    ).toThrow(/proxyUrl/);
    expect(() =>
      sandboxProxySettings({ proxyUrl: 'http://x:99999', caCertificatePem: PEM }),
    ).toThrow(/proxyUrl/);
    expect(() =>
      sandboxProxySettings({
        proxyUrl: 'http://x:1',
        caCertificatePem: `${PEM}-----BEGIN PRIVATE KEY-----`,
      }),
    ).toThrow(/certificate/);
    expect(() =>
      sandboxProxySettings({
        proxyUrl: 'http://x:1',
        caCertificatePem: PEM,
        bundlePath: '/etc/$(id)',
      }),
    ).toThrow(/bundlePath/);
    expect(() =>
      sandboxProxySettings({ proxyUrl: 'http://x:1', caCertificatePem: PEM, noProxy: ['a b'] }),
    ).toThrow(/NO_PROXY/);
  });
});
