import { describe, expect, it } from 'vitest';
import {
  normaliseRequestTarget,
  parsePathPattern,
  type PathPattern,
} from '../../src/domain/internet/request-path.js';

function pattern(text: string): PathPattern {
  const parsed = parsePathPattern(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.pattern;
}

function normal(target: string): string {
  const result = normaliseRequestTarget(target);
  if (!result.ok) throw new Error(result.reason);
  return result.path;
}

describe('normaliseRequestTarget', () => {
  it.each([
    ['/repos/acme/x', '/repos/acme/x'],
    ['/%72epos/acme/x', '/repos/acme/x'], // unreserved escape decoded
    ['/repos/%61cme/%7e', '/repos/acme/~'],
    ['/repos/acme/%2e%2e/other', '/repos/other'],
    ['/repos/acme/%2E%2e/other', '/repos/other'],
    ['/repos/acme/.%2E/other', '/repos/other'],
    ['/repos/acme/../other', '/repos/other'],
    ['/repos/acme/./x', '/repos/acme/x'],
    ['/repos//acme///x', '/repos/acme/x'],
    ['//repos/acme/x', '/repos/acme/x'],
    ['/repos/acme/..;/other', '/repos/other'],
    ['/repos/acme/.;x=1/y', '/repos/acme/y'],
    ['/repos/acme;x=1/y', '/repos/acme/y'],
    ['/repos/acme/x%2fy', '/repos/acme/x%2Fy'], // kept encoded, upper-cased
    ['/a/b/../../..', '/'],
    ['/a/b/..', '/a/'],
    ['/a/b/', '/a/b/'],
    ['/', '/'],
    ['//', '/'],
    ['/repos/acme/x?q=/../..', '/repos/acme/x'],
  ])('%s compares as %s', (target, expected) => {
    expect(normal(target)).toBe(expected);
  });

  it('forwards the normal form with its parameters and the query as sent', () => {
    expect(normaliseRequestTarget('/repos//acme/./x;v=1/../y?page=2')).toEqual({
      ok: true,
      path: '/repos/acme/y',
      forward: '/repos/acme/y?page=2',
    });
  });

  it.each([
    ['/repos/acme%2F..%2Fother', 'dot segment behind an encoded'],
    ['/repos/acme/x%2f..%2fy', 'dot segment behind an encoded'],
    ['/repos/acme/x%5C..%5Cy', 'dot segment behind an encoded'],
    ['/repos/acme/%2E%2E%2Fother', 'dot segment behind an encoded'],
    // In a segment's ";" parameters, which are not compared but forwarded (review 2).
    ['/user;%2F..%2Fadmin', 'dot segment behind an encoded'],
    ['/user;%5C..%5Cadmin', 'dot segment behind an encoded'],
    ['/repos/acme;%2F..%2F..%2Fadmin%2Fsecrets/issues', 'dot segment behind an encoded'],
    ['/repos/acme;x%2Fother/issues', 'an encoded "/" or "\\" in a ";" parameter'],
    ['/repos/acme;x%5cother/issues', 'an encoded "/" or "\\" in a ";" parameter'],
    ['/a\\..\\b', 'must be percent-encoded'],
    ['/a b', 'must be percent-encoded'],
    ['/a/\u00e9', 'must be percent-encoded'],
    ['/a/%zz', 'malformed percent-escape'],
    ['/a/%4', 'malformed percent-escape'],
    ['/a#b', '"#"'],
    ['*', 'not a path'],
    ['http://x/a', 'not a path'],
  ])('refuses %s', (target, reason) => {
    const result = normaliseRequestTarget(target);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reason);
  });

  // The dot segments and percent-decoding agree with the WHATWG URL parser (Node's `URL`) on
  // paths without the cases it leaves alone (`//`, `;`, escapes of unreserved characters).
  it.each(['/a/b/../c', '/a/./b/.', '/a/%2e%2E/b', '/a/b/%2E', '/x/../../y', '/a/b/..'])(
    'agrees with WHATWG URL on %s',
    (target) => {
      expect(normal(target)).toBe(new URL(target, 'https://h.test').pathname);
    },
  );
});

describe('parsePathPattern', () => {
  it('a trailing * matches everything under the prefix, any depth', () => {
    const p = pattern('/repos/acme/*');
    expect(p.matches('/repos/acme/x')).toBe(true);
    expect(p.matches('/repos/acme/x/issues/1')).toBe(true);
    expect(p.matches('/repos/acme/')).toBe(true);
    expect(p.matches('/repos/acme')).toBe(false);
    expect(p.matches('/repos/acme-evil/x')).toBe(false);
    expect(p.matches('/repos/acmex')).toBe(false);
    expect(p.matches('/Repos/acme/x')).toBe(false);
  });

  it('a * inside a segment matches one segment, never across an encoded slash', () => {
    const p = pattern('/repos/*/issues');
    expect(p.matches('/repos/a/issues')).toBe(true);
    expect(p.matches('/repos/a/b/issues')).toBe(false);
    expect(p.matches('/repos/a%2Fb/issues')).toBe(false);
    expect(p.matches('/repos/a%5Cb/issues')).toBe(false);
  });

  it('never matches across an encoded slash in the literal part', () => {
    const p = pattern('/repos/acme/*');
    expect(p.matches(normal('/repos%2Facme/x'))).toBe(false);
  });

  it('an exact pattern matches exactly', () => {
    const p = pattern('/user');
    expect(p.matches('/user')).toBe(true);
    expect(p.matches('/user/')).toBe(false);
    expect(p.matches('/users')).toBe(false);
  });

  it.each(['', 'repos/*', '/a/../b', '/a//b', '/a/./b', '/%61', '/a;b=1', '/a?x', '/a b'])(
    'refuses the pattern %j',
    (text) => {
      expect(parsePathPattern(text).ok).toBe(false);
    },
  );

  it('keeps escapes of reserved characters, in upper case', () => {
    expect(pattern('/a%2fb').matches('/a%2Fb')).toBe(true);
  });
});
