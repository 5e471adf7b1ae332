import { describe, expect, it } from 'vitest';
import { parseEnvironmentFile } from '../../src/domain/environment/environment-file.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { allowlistWarnings } from '../../src/domain/internet/allowlist-lint.js';

/** Issue 19 item 4: the allowlist lint (Public Suffix List through tldts). */

const base = 'name: payments\nrepository: https://git.example.test/acme/payments.git\n';

function allowlist(...domains: string[]): string {
  return `${base}internet:\n  access: allowlist\n  domains:\n${domains.map((d) => `    - '${d}'\n`).join('')}`;
}

function refusalOf(text: string): { path: string; message: string; line?: number }[] {
  try {
    parseEnvironmentFile(text, 'env.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(BerthError);
    expect((error as BerthError).code).toBe('invalid_environment');
    return (error as BerthError).details.issues as { path: string; message: string }[];
  }
  throw new Error('expected a refusal');
}

describe('allowlist lint: refusals', () => {
  it.each([
    ['*.com', 'com'],
    ['*.co.uk', 'co.uk'],
    // The Public Suffix List's private section: platforms' user namespaces.
    ['*.github.io', 'github.io'],
    ['*.s3.amazonaws.com', 's3.amazonaws.com'],
    ['*.workers.dev', 'workers.dev'],
    ['*.githubusercontent.com', 'githubusercontent.com'],
    // Case, a trailing dot and IDN do not hide the suffix.
    ['*.GitHub.IO.', 'github.io'],
    // A wildcard rule of the list: every name under ck is itself a public suffix.
    ['*.foo.ck', 'foo.ck'],
  ])('refuses %s with the field path and why', (pattern, suffix) => {
    const issues = refusalOf(allowlist('api.example.test', pattern));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('internet.domains[1]');
    expect(issues[0]?.line).toBe(7);
    expect(issues[0]?.message).toMatch(/wildcard over a public suffix/);
    expect(issues[0]?.message).toContain(suffix);
    expect(issues[0]?.message).toMatch(/list the exact names you need/);
  });

  it('refuses "*" alone, saying what it would mean and what to write instead', () => {
    const issues = refusalOf(allowlist('*'));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('internet.domains[0]');
    expect(issues[0]?.message).toMatch(/would allow every host/);
    expect(issues[0]?.message).toMatch(/access: on/);
  });

  it.each([
    '*.example.com',
    '*.acme.github.io',
    '*.cdn.example.test',
    'github.io',
    'bucket.s3.amazonaws.com',
    'acme.workers.dev',
    'co.uk.example.test',
  ])('accepts %s (not a wildcard over a public suffix)', (pattern) => {
    const spec = parseEnvironmentFile(allowlist(pattern), 'env.yaml');
    expect(spec.internet.domains).toEqual([pattern]);
  });
});

describe('allowlist lint: warnings', () => {
  it('warns on single names that serve anybody content, with the field path', () => {
    const spec = parseEnvironmentFile(
      allowlist('api.example.test', 'raw.githubusercontent.com', 'storage.googleapis.com'),
    );
    const warnings = allowlistWarnings(spec.internet);
    expect(warnings.map((w) => w.path)).toEqual(['internet.domains[1]', 'internet.domains[2]']);
    expect(warnings[0]?.message).toMatch(/raw\.githubusercontent\.com.*anybody's content/);
    expect(warnings[1]?.message).toMatch(/storage\.googleapis\.com.*anybody's content/);
  });

  it('warns on well-known DNS-over-HTTPS resolvers, by name and by a wildcard that covers one', () => {
    const spec = parseEnvironmentFile(allowlist('dns.google', 'cloudflare-dns.com', '*.quad9.net'));
    const warnings = allowlistWarnings(spec.internet);
    expect(warnings.map((w) => w.path)).toEqual([
      'internet.domains[0]',
      'internet.domains[1]',
      'internet.domains[2]',
    ]);
    for (const warning of warnings) expect(warning.message).toMatch(/DNS-over-HTTPS resolver/);
    expect(warnings[2]?.message).toContain('dns.quad9.net');
  });

  it('gives no warning for an ordinary allowlist', () => {
    const spec = parseEnvironmentFile(allowlist('api.example.test', '*.cdn.example.test'));
    expect(allowlistWarnings(spec.internet)).toEqual([]);
  });
});
