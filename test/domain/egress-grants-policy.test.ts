import { describe, expect, it } from 'vitest';
import type { InternetPolicy } from '../../src/domain/environment/environment-spec.js';
import { deniedHosts, isDenial } from '../../src/domain/internet/egress-denial.js';
import { EgressPolicy, type EgressRequest } from '../../src/domain/internet/egress-policy.js';

const internet: InternetPolicy = {
  access: 'allowlist',
  presets: [],
  domains: ['api.github.test', 'api.example.test', 'pinned.test', 'plain.test'],
  tunnelOnly: ['pinned.test'],
  credentials: [
    { host: 'api.example.test', header: 'Authorization', secret: 'T', format: 'Bearer {value}' },
  ],
  rules: [
    { host: 'api.github.test', methods: ['GET', 'POST'], paths: ['/repos/acme/x/issues'] },
    { host: 'api.github.test', methods: ['GET'], paths: ['/repos/acme/*'] },
    { host: 'pinned.test', methods: ['GET'], paths: ['/*'] },
  ],
  budget: { requests: 10 },
};
const policy = new EgressPolicy(internet);

function decide(request: Partial<EgressRequest>) {
  return policy.decide({ host: 'api.github.test', port: 443, scheme: 'https', ...request });
}

describe('EgressPolicy with credentials and rules', () => {
  it('intercepts hosts with a credential or a rule (a rule wins over tunnelOnly), not the others', () => {
    expect(policy.intercepts('api.example.test')).toBe(true);
    expect(policy.intercepts('api.github.test')).toBe(true);
    expect(policy.intercepts('pinned.test')).toBe(true);
    expect(policy.intercepts('plain.test')).toBe(false);
    expect(policy.decide({ host: 'api.example.test', port: 443, scheme: 'connect' })).toMatchObject(
      { allowed: true, tunnel: 'intercept', reason: 'allowed; requests are checked' },
    );
    expect(policy.decide({ host: 'plain.test', port: 443, scheme: 'connect' })).toMatchObject({
      allowed: true,
      tunnel: 'passthrough',
    });
  });

  it('refuses TRACE and TRACK to a credential host (their answer echoes the credential)', () => {
    for (const method of ['TRACE', 'TRACK'])
      for (const scheme of ['https', 'http'] as const)
        expect(
          decide({
            host: 'api.example.test',
            port: scheme === 'http' ? 80 : 443,
            method,
            scheme,
            target: '/x',
          }),
        ).toMatchObject({
          allowed: false,
          rule: 'method',
          reason: `${method} is never sent to a host the proxy adds a credential to (its answer would echo the credential)`,
        });
    // Elsewhere the environment's methods decide as before.
    expect(decide({ host: 'plain.test', method: 'TRACE', target: '/x' })).toMatchObject({
      allowed: true,
    });
  });

  it('limits methods only where the environment or a rule does', () => {
    expect(policy.limitsMethods('api.github.test')).toBe(true);
    expect(policy.limitsMethods('api.example.test')).toBe(false);
    expect(decide({ host: 'api.example.test', method: 'DELETE', target: '/x' })).toMatchObject({
      allowed: true,
    });
  });

  it('the first rule whose host and path match decides, naming itself', () => {
    expect(decide({ method: 'POST', target: '/repos/acme/x/issues' })).toMatchObject({
      allowed: true,
      rule: 'domain:api.github.test rules[0]:/repos/acme/x/issues',
      forward: '/repos/acme/x/issues',
    });
    expect(decide({ method: 'GET', target: '/repos//acme/./y?q=1' })).toMatchObject({
      allowed: true,
      rule: 'domain:api.github.test rules[1]:/repos/acme/*',
      forward: '/repos/acme/y?q=1',
    });
    expect(decide({ method: 'POST', target: '/repos/acme/y' })).toMatchObject({
      allowed: false,
      rule: 'method',
      reason: 'method not allowed on /repos/acme/y (internet.rules[1] allows: GET)',
    });
    expect(decide({ method: 'GET', target: '/orgs/acme' })).toMatchObject({
      allowed: false,
      rule: 'path',
      reason:
        'path /orgs/acme is not allowed (no internet.rules entry for api.github.test matches it)',
    });
    // Plain HTTP is checked the same way.
    expect(
      decide({ scheme: 'http', port: 80, method: 'GET', target: '/repos/acme/%2e%2e/admin' }),
    ).toMatchObject({ allowed: false, rule: 'path' });
  });

  it('a target that cannot be compared is refused, as is a missing one', () => {
    expect(decide({ method: 'GET', target: '/repos/acme%2F..%2Fadmin' })).toMatchObject({
      allowed: false,
      rule: 'path',
      reason: 'a dot segment behind an encoded "/" or "\\" in the path',
    });
    expect(decide({ method: 'GET' })).toMatchObject({ allowed: false, rule: 'path' });
  });
});

describe('denials of rules and budgets, explained', () => {
  it('counts path and budget refusals as denials, with a suggestion each', () => {
    expect(isDenial('path')).toBe(true);
    expect(isDenial('budget')).toBe(true);
    const method = decide({ method: 'POST', target: '/repos/acme/y' });
    const path = decide({ method: 'GET', target: '/orgs/acme' });
    const list = deniedHosts(
      [
        {
          host: 'api.github.test',
          port: 443,
          method: 'POST',
          scheme: 'https',
          rule: method.rule,
          reason: method.reason,
        },
        {
          host: 'api.github.test',
          port: 443,
          method: 'GET',
          scheme: 'https',
          rule: path.rule,
          reason: path.reason,
        },
        {
          host: 'api.example.test',
          port: 443,
          method: 'GET',
          scheme: 'https',
          rule: 'budget',
          reason: 'budget reached: 10 requests (internet.budget.requests)',
        },
      ],
      internet,
    );
    expect(list.map((d) => d.suggestion)).toEqual([
      "internet.rules[1].methods: [GET, POST] (add POST for that rule's paths)",
      'internet.rules: add { host: api.github.test, methods: [GET], paths: ["/orgs/acme"] } (rules are tried in order; the first whose host and paths match decides)',
      'internet.budget.requests: raise it (it bounds every attempt of this environment)',
    ]);
  });
});
