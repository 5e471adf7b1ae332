import { describe, expect, it } from 'vitest';
import { EgressPolicy } from '../../src/domain/internet/egress-policy.js';
import {
  COMMON_DEPENDENCY_HOSTS,
  aptSourceUrls,
  commonDependencyHosts,
  hostsFromImageConfiguration,
} from '../../src/domain/internet/preset-hosts.js';
import type { InternetPolicy } from '../../src/domain/environment/environment-spec.js';

function policy(
  internet: Partial<InternetPolicy>,
  extra?: { tunnel?: number[]; http?: number[] },
): EgressPolicy {
  return new EgressPolicy(
    { access: 'allowlist', presets: [], domains: [], tunnelOnly: [], ...internet },
    {
      presets: { 'common-dependencies': ['pkgs.example', '*.mirror.example'] },
      ...(extra !== undefined ? { extraPorts: extra } : {}),
    },
  );
}

describe('EgressPolicy', () => {
  it('off refuses everything, even hosts that would match', () => {
    const p = policy({ access: 'off', domains: ['allowed.test'] });
    const d = p.decide({ host: 'allowed.test', port: 443, scheme: 'connect' });
    expect(d).toMatchObject({ allowed: false, rule: 'access:off' });
  });

  it('on allows any valid name on the default ports, and says so', () => {
    const p = policy({ access: 'on' });
    expect(p.decide({ host: 'anything.example', port: 443, scheme: 'connect' })).toMatchObject({
      allowed: true,
      rule: 'access:on',
      tunnel: 'passthrough',
    });
    expect(
      p.decide({ host: 'anything.example', port: 80, scheme: 'http', method: 'POST' }).allowed,
    ).toBe(true);
    expect(p.decide({ host: 'anything.example', port: 22, scheme: 'connect' }).rule).toBe('port');
    expect(p.decide({ host: '127.0.0.1', port: 443, scheme: 'connect' }).rule).toBe('host');
  });

  it('allowlist matches exact names and suffixes on label boundaries only', () => {
    const p = policy({ domains: ['allowed.test', '*.suffix.test'] });
    const allowed = (host: string) => p.decide({ host, port: 443, scheme: 'connect' }).allowed;
    expect(allowed('allowed.test')).toBe(true);
    expect(allowed('ALLOWED.Test')).toBe(true);
    expect(allowed('allowed.test.')).toBe(true);
    expect(allowed('a.b.suffix.test')).toBe(true);
    // suffix tricks
    expect(allowed('evil-allowed.test')).toBe(false);
    expect(allowed('evilallowed.test')).toBe(false);
    expect(allowed('allowed.test.evil.test')).toBe(false);
    expect(allowed('sub.allowed.test')).toBe(false);
    expect(allowed('suffix.test')).toBe(false);
    expect(allowed('evilsuffix.test')).toBe(false);
    // empty labels, double trailing dots
    expect(allowed('allowed..test')).toBe(false);
    expect(allowed('.allowed.test')).toBe(false);
    expect(allowed('allowed.test..')).toBe(false);
    // IDN look-alike: Cyrillic "а" is a different name once in punycode
    expect(allowed('\u0430llowed.test')).toBe(false);
    expect(p.decide({ host: '\u0430llowed.test', port: 443, scheme: 'connect' }).host).toMatch(
      /^xn--/,
    );
    // IP forms
    for (const ip of [
      '127.1',
      '2130706433',
      '0x7f.1',
      '[::ffff:127.0.0.1]',
      '::1',
      '127.0.0.1',
      '0177.0.0.1',
    ]) {
      const d = p.decide({ host: ip, port: 443, scheme: 'connect' });
      expect(d.allowed, ip).toBe(false);
      expect(d.rule, ip).toBe('host');
    }
  });

  it('names the rule that allowed, including presets', () => {
    const p = policy({ domains: ['*.suffix.test'], presets: ['common-dependencies'] });
    expect(p.decide({ host: 'x.suffix.test', port: 443, scheme: 'connect' }).rule).toBe(
      'domain:*.suffix.test',
    );
    expect(p.decide({ host: 'pkgs.example', port: 443, scheme: 'connect' }).rule).toBe(
      'preset:common-dependencies:pkgs.example',
    );
    expect(
      p.decide({ host: 'a.mirror.example', port: 80, scheme: 'http', method: 'GET' }).rule,
    ).toBe('preset:common-dependencies:*.mirror.example');
    expect(p.decide({ host: 'other.example', port: 443, scheme: 'connect' })).toMatchObject({
      allowed: false,
      rule: 'no-match',
      reason: 'other.example is not on the allowlist',
    });
  });

  it('allows 443 for tunnels and 80 for plain HTTP unless more are allowed', () => {
    const p = policy({ domains: ['allowed.test'] });
    expect(p.decide({ host: 'allowed.test', port: 443, scheme: 'connect' }).allowed).toBe(true);
    expect(p.decide({ host: 'allowed.test', port: 80, scheme: 'connect' }).allowed).toBe(false);
    expect(p.decide({ host: 'allowed.test', port: 22, scheme: 'connect' }).rule).toBe('port');
    expect(
      p.decide({ host: 'allowed.test', port: 80, scheme: 'http', method: 'GET' }).allowed,
    ).toBe(true);
    expect(
      p.decide({ host: 'allowed.test', port: 443, scheme: 'http', method: 'GET' }).allowed,
    ).toBe(false);
    const wider = policy({ domains: ['allowed.test'] }, { tunnel: [8443] });
    expect(wider.decide({ host: 'allowed.test', port: 8443, scheme: 'connect' }).allowed).toBe(
      true,
    );
    expect(wider.decide({ host: 'allowed.test', port: 8444, scheme: 'connect' }).allowed).toBe(
      false,
    );
  });

  it('limits methods as a set and decides interception per host', () => {
    const p = policy({
      domains: ['allowed.test', 'pinned.test'],
      methods: ['GET', 'HEAD'],
      tunnelOnly: ['pinned.test'],
    });
    expect(p.decide({ host: 'allowed.test', port: 443, scheme: 'connect' }).tunnel).toBe(
      'intercept',
    );
    expect(p.decide({ host: 'pinned.test', port: 443, scheme: 'connect' }).tunnel).toBe(
      'passthrough',
    );
    expect(
      p.decide({ host: 'allowed.test', port: 443, scheme: 'https', method: 'GET' }).allowed,
    ).toBe(true);
    for (const method of [
      'POST',
      'PUT',
      'PATCH',
      'DELETE',
      'PROPFIND',
      'get',
      'CONNECT',
      'G ET',
      '',
    ]) {
      const d = p.decide({ host: 'allowed.test', port: 443, scheme: 'https', method });
      expect(d.allowed, method).toBe(false);
      expect(d.rule, method).toBe('method');
    }
    const unlimited = policy({ domains: ['allowed.test'] });
    expect(
      unlimited.decide({ host: 'allowed.test', port: 80, scheme: 'http', method: 'DELETE' })
        .allowed,
    ).toBe(true);
    expect(unlimited.decide({ host: 'allowed.test', port: 443, scheme: 'connect' }).tunnel).toBe(
      'passthrough',
    );
  });

  it('tunnelOnly does not allow a host by itself', () => {
    const p = policy({ domains: [], methods: ['GET'], tunnelOnly: ['pinned.test'] });
    expect(p.decide({ host: 'pinned.test', port: 443, scheme: 'connect' }).allowed).toBe(false);
  });

  it('forEnvironment expands common-dependencies with the image registries', () => {
    const p = EgressPolicy.forEnvironment(
      { access: 'allowlist', presets: ['common-dependencies'], domains: [], tunnelOnly: [] },
      {
        npmRegistry: 'https://npm-mirror.example/',
        aptSources: 'deb http://apt-mirror.example/debian bookworm main\n',
      },
    );
    expect(p.decide({ host: 'npm-mirror.example', port: 443, scheme: 'connect' }).allowed).toBe(
      true,
    );
    expect(
      p.decide({ host: 'apt-mirror.example', port: 80, scheme: 'http', method: 'GET' }).allowed,
    ).toBe(true);
    expect(p.decide({ host: 'pypi.org', port: 443, scheme: 'connect' }).allowed).toBe(true);
  });
});

describe('registries on non-default ports', () => {
  const p = EgressPolicy.forEnvironment(
    {
      access: 'allowlist',
      presets: ['common-dependencies'],
      domains: ['allowed.test'],
      tunnelOnly: [],
    },
    {
      npmRegistry: 'https://npm.corp.example:8443/repository/npm/',
      aptSources:
        'deb http://apt.corp.example:8081/debian bookworm main\ndeb https://plain.corp.example:443/x b m\n',
    },
  );
  it('allows the port an image registry names, for that host only', () => {
    expect(p.decide({ host: 'npm.corp.example', port: 8443, scheme: 'connect' })).toMatchObject({
      allowed: true,
      rule: 'preset:common-dependencies:npm.corp.example',
    });
    expect(
      p.decide({ host: 'apt.corp.example', port: 8081, scheme: 'http', method: 'GET' }).allowed,
    ).toBe(true);
    expect(p.decide({ host: 'npm.corp.example', port: 443, scheme: 'connect' }).allowed).toBe(true);
    expect(p.decide({ host: 'npm.corp.example', port: 8444, scheme: 'connect' }).rule).toBe('port');
    expect(p.decide({ host: 'allowed.test', port: 8443, scheme: 'connect' }).rule).toBe('port');
    expect(p.decide({ host: 'pypi.org', port: 8081, scheme: 'http', method: 'GET' }).rule).toBe(
      'port',
    );
    expect(p.decide({ host: 'plain.corp.example', port: 443, scheme: 'connect' }).allowed).toBe(
      true,
    );
  });
});

describe('preset hosts', () => {
  it('reads the npm registry and apt sources in both formats', () => {
    const aptSources = [
      '# deb http://commented.example/debian bookworm main',
      'deb [signed-by=/usr/share/keyrings/k.gpg arch=amd64] https://one-line.example/debian bookworm main',
      'deb-src mirror+http://src.example:8080/debian bookworm main',
      '',
      'Types: deb',
      '# http://comment-in-stanza.example/archive',
      'URIs: http://deb822-a.example/debian http://user:pw@deb822-b.example/debian',
      '  http://continued.example/debian',
      'Suites: bookworm bookworm-updates',
      'Components: main',
      '',
      'Types: deb',
      'URIs: http://[::1]/debian',
      'Suites: bookworm',
    ].join('\n');
    expect(aptSourceUrls(aptSources)).toContain('http://continued.example/debian');
    expect(
      hostsFromImageConfiguration({
        npmRegistry: 'https://Registry.Mirror.Example:4873/npm/',
        aptSources,
      }).sort(),
    ).toEqual(
      [
        'registry.mirror.example:4873',
        'one-line.example',
        'src.example:8080',
        'deb822-a.example',
        'deb822-b.example',
        'continued.example',
      ].sort(),
    );
  });

  it('ignores what is not an http(s) URL with a DNS name', () => {
    expect(
      hostsFromImageConfiguration({
        npmRegistry: 'file:///srv/npm',
        aptSources: 'deb cdrom:[Debian]/ bookworm main',
      }),
    ).toEqual([]);
    expect(hostsFromImageConfiguration({ npmRegistry: 'http://10.0.0.1:4873/' })).toEqual([]);
  });

  it('the static list holds only valid, distinct names and the image registries are added', () => {
    expect(new Set(COMMON_DEPENDENCY_HOSTS).size).toBe(COMMON_DEPENDENCY_HOSTS.length);
    for (const host of COMMON_DEPENDENCY_HOSTS) expect(host).toMatch(/^[a-z0-9.-]+$/);
    const hosts = commonDependencyHosts({ npmRegistry: 'https://npm.corp.example' });
    expect(hosts).toContain('npm.corp.example');
    expect(hosts.length).toBe(COMMON_DEPENDENCY_HOSTS.length + 1);
  });
});
