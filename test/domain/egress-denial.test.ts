import { describe, expect, it } from 'vitest';
import {
  deniedHosts,
  denialLine,
  MAX_DENIED_HOSTS,
  type EgressDenial,
} from '../../src/domain/internet/egress-denial.js';
import { EgressPolicy } from '../../src/domain/internet/egress-policy.js';
import type { InternetPolicy } from '../../src/domain/environment/environment-spec.js';

/** Issue 19 item 5: a denial explained in one line, and the change that would allow it. */

const internet: InternetPolicy = {
  access: 'allowlist',
  presets: [],
  domains: ['api.example.test'],
  methods: ['GET', 'HEAD', 'OPTIONS'],
  tunnelOnly: [],
};

function denied(request: {
  host: string;
  port: number;
  method?: string;
  scheme: 'connect' | 'http' | 'https';
}): EgressDenial {
  const decision = new EgressPolicy(internet).decide(request);
  expect(decision.allowed).toBe(false);
  return {
    host: request.host,
    port: request.port,
    method: request.method ?? 'CONNECT',
    scheme: request.scheme,
    rule: decision.rule,
    reason: decision.reason,
  };
}

describe('denial lines', () => {
  it('is the line of the issue for a method the environment does not allow', () => {
    const denial = denied({ host: 'api.example.test', port: 443, method: 'POST', scheme: 'https' });
    expect(denialLine(denial)).toBe(
      'berth egress: POST api.example.test denied: method not allowed (allowed: GET, HEAD, OPTIONS)',
    );
  });

  it('names a host off the allowlist, with the port only when it is not the default', () => {
    expect(denialLine(denied({ host: 'evil.test', port: 443, scheme: 'connect' }))).toBe(
      'berth egress: CONNECT evil.test denied: evil.test is not on the allowlist',
    );
    expect(
      denialLine(denied({ host: 'evil.test', port: 8080, method: 'GET', scheme: 'http' })),
    ).toBe('berth egress: GET evil.test:8080 denied: evil.test is not on the allowlist');
  });

  it('keeps what a hostile client sent to one printable, bounded line', () => {
    const line = denialLine({
      method: 'GET\r\nX-Evil: 1',
      host: `evil\n${'a'.repeat(5000)}`,
      port: 443,
      scheme: 'https',
      reason: 'r\u0000\u2028',
    });
    expect(line).not.toMatch(/[^\x20-\x7e]/);
    expect(line.length).toBeLessThan(1000);
  });
});

describe('denied hosts with suggestions', () => {
  it('suggests the environment file change for each denied host, once per host and fix', () => {
    const list = deniedHosts(
      [
        denied({ host: 'registry.example.test', port: 443, scheme: 'connect' }),
        denied({ host: 'registry.example.test', port: 443, scheme: 'connect' }),
        denied({ host: 'api.example.test', port: 443, method: 'POST', scheme: 'https' }),
        denied({ host: 'api.example.test', port: 443, method: 'POST', scheme: 'https' }),
        denied({ host: 'api.example.test', port: 443, method: 'DELETE', scheme: 'https' }),
        { ...denied({ host: 'x.test', port: 443, scheme: 'connect' }), rule: 'dns' },
      ],
      internet,
    );
    expect(list).toEqual([
      {
        host: 'registry.example.test',
        method: 'CONNECT',
        reason: 'registry.example.test is not on the allowlist',
        suggestion:
          'internet.domains: [api.example.test, registry.example.test] (add "registry.example.test")',
      },
      {
        host: 'api.example.test',
        method: 'POST',
        reason: 'method not allowed (allowed: GET, HEAD, OPTIONS)',
        suggestion:
          'internet.methods: [GET, HEAD, OPTIONS, POST] (add POST; it then applies to every allowed host)',
      },
      {
        host: 'api.example.test',
        method: 'DELETE',
        reason: 'method not allowed (allowed: GET, HEAD, OPTIONS)',
        suggestion:
          'internet.methods: [GET, HEAD, OPTIONS, DELETE] (add DELETE; it then applies to every allowed host)',
      },
    ]);
  });

  it('points at the operator for what the environment file cannot allow', () => {
    const [port, address] = deniedHosts(
      [
        denied({ host: 'api.example.test', port: 8443, scheme: 'connect' }),
        {
          host: 'intranet.example.test',
          port: 443,
          method: 'CONNECT',
          scheme: 'connect',
          rule: 'address:private',
          reason: 'intranet.example.test resolves to a refused address',
        },
      ],
      { ...internet, domains: ['api.example.test', 'intranet.example.test'] },
    );
    expect(port?.suggestion).toMatch(/BERTH_EGRESS_PORTS/);
    expect(address?.suggestion).toMatch(/BERTH_EGRESS_ALLOW/);
  });

  it('keeps at most MAX_DENIED_HOSTS entries', () => {
    const many = Array.from({ length: 500 }, (_, i) =>
      denied({ host: `h${i}.test`, port: 443, scheme: 'connect' }),
    );
    expect(deniedHosts(many, internet)).toHaveLength(MAX_DENIED_HOSTS);
  });
});
