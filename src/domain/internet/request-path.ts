/**
 * Threat model. Request paths for `internet.rules` (`{ host, methods, paths }`), from a sandbox
 * that wants to reach a path no rule allows while looking like one that is allowed: encoded
 * slashes and dots (`/repos/acme%2F..%2Fother`, `/repos/acme/%2e%2e/other`), `..` and `.`,
 * repeated slashes, mixed-case escapes (`%2f`, `%2E`), `;` parameters (`/repos/acme/..;/other`,
 * which some servers read as `..`), backslashes, over-long targets. Pure: no I/O.
 *
 * Guarantees:
 * - A path is compared in one normal form: percent-escapes of unreserved characters (RFC 3986:
 *   letters, digits, `-`, `.`, `_`, `~`) decoded, every other escape kept with upper-case hex,
 *   empty segments (`//`) dropped, dot segments (`.`, `..`, also written `%2e`, `%2E%2e`, and
 *   with `;` parameters) resolved; a segment's `;` parameters are not part of what is compared.
 * - An encoded `/` (`%2F`, any case) or `\` (`%5C`) is never a separator when comparing: a
 *   pattern never matches across one, a `*` inside a segment does not match one, and a dot
 *   segment hidden behind one (`a%2F..%2Fb`, `a;%2F..%2Fb`), anywhere in a segment, its `;`
 *   parameters included, is refused outright (a server that decodes it first would resolve it);
 *   one inside `;` parameters is refused too (`acme;x%2Fother`: not compared, but forwarded, and
 *   a server that decodes it first reads one more segment).
 * - Raw characters that must be percent-encoded (space, `\`, `"`, `<`, `>`, `^`, `` ` ``, `{`,
 *   `|`, `}`, control characters, anything outside ASCII), `#`, and malformed escapes are refused.
 * - The proxy forwards the normal form it compared (`forward`), never the raw target, so the
 *   upstream server and the check cannot read the path differently.
 * Not covered: the query string (not compared by path rules; data can leave through it on an
 * allowed path); upper and lower case (paths are case-sensitive: `/Repos/acme` does not match a
 * rule for `/repos/acme/*`, which errs on the side of refusing).
 */

/** RFC 3986 unreserved characters: decoded when percent-encoded. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/** Characters a path may carry raw: unreserved, sub-delims, `:`, `@`, `/` and `%` (escapes). */
const PATH_CHARACTERS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
/** Characters a query may carry raw (RFC 3986: pchar, `/` and `?`). */
const QUERY_CHARACTERS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;
/** Encoded separators: never a separator when comparing. */
const ENCODED_SEPARATOR = /%2F|%5C/;

/** The longest request target the proxy accepts by default (URL length cap). */
export const DEFAULT_MAX_TARGET_BYTES = 8 * 1024;

export type PathNormalisation =
  | {
      ok: true;
      /** The normal form compared with the rules (no `;` parameters, no query). */
      path: string;
      /** What the proxy sends upstream: the normal form with the parameters, and the query. */
      forward: string;
    }
  | { ok: false; reason: string };

/** Decodes unreserved escapes and upper-cases the others; undefined for a malformed escape. */
function normaliseEscapes(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = text.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
    const decoded = String.fromCharCode(parseInt(hex, 16));
    out += UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

/** The name part of a segment (before its first `;`). */
function segmentName(segment: string): string {
  const semicolon = segment.indexOf(';');
  return semicolon === -1 ? segment : segment.slice(0, semicolon);
}

function isDotSegment(name: string): boolean {
  return name === '.' || name === '..';
}

/**
 * The normal form of an origin-form request target (`/path?query`), or why it is refused.
 * (The proxy applies the length cap before this.)
 */
export function normaliseRequestTarget(target: string): PathNormalisation {
  if (!target.startsWith('/'))
    return { ok: false, reason: 'the request target is not a path starting with "/"' };
  if (target.includes('#')) return { ok: false, reason: 'a "#" in the request target' };
  const question = target.indexOf('?');
  const rawPath = question === -1 ? target : target.slice(0, question);
  const query = question === -1 ? undefined : target.slice(question + 1);
  if (!PATH_CHARACTERS.test(rawPath))
    return { ok: false, reason: 'a character in the path that must be percent-encoded' };
  if (query !== undefined && !QUERY_CHARACTERS.test(query))
    return { ok: false, reason: 'a character in the query that must be percent-encoded' };
  const path = normaliseEscapes(rawPath);
  if (path === undefined) return { ok: false, reason: 'a malformed percent-escape in the path' };
  if (query !== undefined && normaliseEscapes(query) === undefined)
    return { ok: false, reason: 'a malformed percent-escape in the query' };

  const kept: string[] = [];
  const parts = path.split('/').slice(1);
  let trailingSlash = false;
  for (const [index, segment] of parts.entries()) {
    const last = index === parts.length - 1;
    const name = segmentName(segment);
    // A dot segment behind an encoded separator: a server that decodes first resolves it. The
    // whole segment is looked at, its `;` parameters too (not compared, but forwarded).
    if (
      ENCODED_SEPARATOR.test(segment) &&
      segment.split(/%2F|%5C/).some((piece) => isDotSegment(segmentName(piece)))
    ) {
      return {
        ok: false,
        reason: 'a dot segment behind an encoded "/" or "\\" in the path',
      };
    }
    // An encoded separator in the parameters: a server that decodes before it splits reads one
    // more segment than was compared (`/repos/acme;x%2Fother/issues`).
    if (ENCODED_SEPARATOR.test(segment.slice(name.length))) {
      return {
        ok: false,
        reason: 'an encoded "/" or "\\" in a ";" parameter of the path',
      };
    }
    if (name === '' || name === '.') {
      // Repeated slashes and `.` are dropped; at the end they leave a trailing slash.
      if (last) trailingSlash = true;
      continue;
    }
    if (name === '..') {
      kept.pop();
      if (last) trailingSlash = true;
      continue;
    }
    kept.push(segment);
  }
  const join = (segments: string[]) =>
    `/${segments.join('/')}${trailingSlash && segments.length > 0 ? '/' : ''}`;
  const normalPath = join(kept);
  return {
    ok: true,
    path: join(kept.map(segmentName)),
    forward: query === undefined ? normalPath : `${normalPath}?${query}`,
  };
}

/** A parsed `paths` entry of a rule. */
export interface PathPattern {
  pattern: string;
  matches(path: string): boolean;
}

export type PathPatternParse = { ok: true; pattern: PathPattern } | { ok: false; reason: string };

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A `paths` entry: an absolute path in normal form where `*` matches any characters of one
 * segment (never `/`, nor an encoded `/` or `\`), and a `*` that ends the pattern matches the
 * rest of the path, any depth (`/repos/acme/*` is everything under `/repos/acme/`, not
 * `/repos/acme` itself nor `/repos/acme-other/…`).
 */
export function parsePathPattern(pattern: string): PathPatternParse {
  if (pattern.length === 0 || pattern.length > 1024)
    return { ok: false, reason: 'a path pattern is 1 to 1024 characters long' };
  if (!pattern.startsWith('/')) return { ok: false, reason: 'a path pattern starts with "/"' };
  if (pattern.includes('?') || pattern.includes('#'))
    return { ok: false, reason: 'a path pattern has no query or "#" (queries are not compared)' };
  const normal = normaliseRequestTarget(pattern);
  if (!normal.ok) return { ok: false, reason: normal.reason };
  const escaped = pattern.replace(/%[0-9A-Fa-f]{2}/g, (escape) => escape.toUpperCase());
  if (normal.forward !== escaped || normal.path !== escaped) {
    return {
      ok: false,
      reason: `a path pattern is written in normal form (no "//", ".", "..", ";" parameters or escapes of unreserved characters): "${normal.path}"`,
    };
  }
  const ends = escaped.endsWith('*');
  const body = ends ? escaped.slice(0, -1) : escaped;
  const segment = '(?:(?!%2F|%5C)[^/])*';
  const source = body.split('*').map(escapeRegExp).join(segment);
  const regex = new RegExp(`^${source}${ends ? '.*' : ''}$`);
  return { ok: true, pattern: { pattern, matches: (path) => regex.test(path) } };
}
