import { describe, expect, it } from 'vitest';
import {
  findMatchingRule,
  normaliseHostName,
  parseDomainPattern,
  type DomainRule,
} from '../../src/domain/internet/host-name.js';

function rules(...patterns: string[]): DomainRule[] {
  return patterns.map((p) => {
    const r = parseDomainPattern(p);
    if (!r.ok) throw new Error(r.reason);
    return r.rule;
  });
}

describe('host names', () => {
  it('normalises case, one trailing dot and IDN to punycode', () => {
    expect(normaliseHostName('Example.TEST.')).toEqual({ ok: true, name: 'example.test' });
    expect(normaliseHostName('bücher.test')).toEqual({ ok: true, name: 'xn--bcher-kva.test' });
  });

  it.each([
    '127.1',
    '2130706433',
    '0x7f.1',
    '[::ffff:127.0.0.1]',
    '::1',
    '[::1]',
    'fe80::1',
    '10.0.0.1',
    '1.2.3.4.',
  ])('refuses the IP form %s', (raw) => {
    const result = normaliseHostName(raw);
    expect(result).toEqual({ ok: false, reason: 'IP literals are not allowed' });
  });

  it.each([
    'a..test',
    '.test',
    'example.test..',
    'exa mple.test',
    'user@example.test',
    'example.test:443',
    '-a.test',
    'a-.test',
    'x',
    '',
  ])('refuses the malformed name %j', (raw) => {
    expect(normaliseHostName(raw).ok).toBe(false);
  });
});

describe('allowlist patterns', () => {
  it.each(['*.', 'exa mple.com', '*evil.com', '1.2.3.4', 'a.*.test', '**.test', '*', '*.*.test'])(
    'refuses %j',
    (pattern) => {
      const result = parseDomainPattern(pattern);
      expect(result.ok).toBe(false);
    },
  );

  it('matches exact names and suffixes only on a label boundary', () => {
    const list = rules('example.test', '*.pkg.test');
    expect(findMatchingRule(list, 'example.test')?.pattern).toBe('example.test');
    expect(findMatchingRule(list, 'sub.example.test')).toBeUndefined();
    expect(findMatchingRule(list, 'evil-example.test')).toBeUndefined();
    expect(findMatchingRule(list, 'example.test.evil.test')).toBeUndefined();
    expect(findMatchingRule(list, 'a.pkg.test')?.pattern).toBe('*.pkg.test');
    expect(findMatchingRule(list, 'a.b.pkg.test')?.pattern).toBe('*.pkg.test');
    expect(findMatchingRule(list, 'pkg.test')).toBeUndefined();
    expect(findMatchingRule(list, 'evilpkg.test')).toBeUndefined();
  });

  it('normalises patterns the same way as names', () => {
    const [rule] = rules('*.Bücher.Test.');
    expect(rule).toEqual({
      pattern: '*.xn--bcher-kva.test',
      kind: 'suffix',
      name: 'xn--bcher-kva.test',
    });
  });
});
