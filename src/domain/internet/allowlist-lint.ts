import { getPublicSuffix } from 'tldts';
import { parseDomainPattern, ruleMatches } from './host-name.js';

/**
 * Lint of an environment's allowlist (`internet.domains`). Pure: no I/O.
 *
 * Threat model: the allowlist is a capability grant to code we do not trust. A pattern that
 * looks narrow but lets the sandbox reach a server anybody can control defeats it: the sandbox
 * then sends data to, or takes orders from, a host of the attacker's choosing.
 * - Refused: `*` (every host; `access: on` says that honestly) and a wildcard over a public
 *   suffix — a suffix under which anybody registers names (`*.com`, `*.co.uk`) or, in the
 *   Public Suffix List's private section, a platform's user namespace (`*.github.io`,
 *   `*.s3.amazonaws.com`, `*.workers.dev`). Also a wildcard whose children are themselves
 *   public suffixes by a wildcard rule of the list (`*.ck`-style rules). The list comes from a
 *   maintained library (tldts, pinned), never a hand-kept copy.
 * - Warned, not refused (they have honest uses): single names that serve anybody's content
 *   (`raw.githubusercontent.com`, `storage.googleapis.com`, …) and well-known DNS-over-HTTPS
 *   resolvers (a resolver forwards any query name to that name's server: data leaves as DNS
 *   queries). The Public Suffix List does not carry such names, so these two lists are kept
 *   here, small and documented in docs/internet.md.
 * Not covered: a wildcard over a name that holds public suffixes deeper down without being one
 * (`*.amazonaws.com` matches `bucket.s3.amazonaws.com`): the library cannot list the rules
 * under a name; such a pattern is allowed, as is any name the lists below do not know.
 */

const PSL = { allowPrivateDomains: true, extractHostname: false } as const;

/** A label no real rule names: used to ask whether the children of a name are public suffixes. */
const PROBE_LABEL = 'berth-lint-probe';

export interface SpecWarning {
  /** The field path, as refusals give it (`internet.domains[2]`). */
  path: string;
  message: string;
}

/**
 * Names that serve content anybody can publish (a file in any repository, any bucket's object).
 * Allowing one allows every user's content there, an attacker's included.
 */
export const SHARED_CONTENT_HOSTS: readonly string[] = [
  'raw.githubusercontent.com',
  'gist.githubusercontent.com',
  'objects.githubusercontent.com',
  'codeload.github.com',
  'gist.github.com',
  'storage.googleapis.com',
  'firebasestorage.googleapis.com',
  's3.amazonaws.com',
  'dl.dropboxusercontent.com',
  'pastebin.com',
  'cdn.jsdelivr.net',
  'unpkg.com',
];

/** Well-known DNS-over-HTTPS resolvers. */
export const DNS_OVER_HTTPS_HOSTS: readonly string[] = [
  'dns.google',
  'dns.google.com',
  'cloudflare-dns.com',
  'mozilla.cloudflare-dns.com',
  'one.one.one.one',
  'dns.quad9.net',
  'dns9.quad9.net',
  'dns10.quad9.net',
  'dns11.quad9.net',
  'doh.opendns.com',
  'dns.adguard-dns.com',
  'dns.nextdns.io',
  'doh.cleanbrowsing.org',
  'doh.dns.sb',
  'dns.alidns.com',
  'doh.pub',
  'dns.mullvad.net',
];

/**
 * Why an allowlist pattern is refused, or undefined when it is not. Patterns that are not
 * valid at all are left to `parseDomainPattern` (the schema reports those).
 */
export function allowlistPatternRefusal(pattern: string): string | undefined {
  if (pattern.trim() === '*') {
    return '"*" would allow every host; list the hosts the environment needs, or set "access: on" if every host is what you mean';
  }
  const parsed = parseDomainPattern(pattern);
  let base: string;
  if (parsed.ok && parsed.rule.kind === 'suffix') base = parsed.rule.name;
  else {
    // `*.com`: one label is not a host name, so the pattern does not parse; it is still the
    // widest wildcard over a public suffix there is, and is refused as one.
    const topLevel = /^\*\.([a-z0-9-]{1,63})\.?$/i.exec(pattern.trim())?.[1]?.toLowerCase();
    if (topLevel === undefined || getPublicSuffix(topLevel, PSL) !== topLevel) return undefined;
    base = topLevel;
  }
  const suffixOfBase = getPublicSuffix(base, PSL);
  const probe = `${PROBE_LABEL}.${base}`;
  const childIsSuffix = getPublicSuffix(probe, PSL) === probe;
  if (suffixOfBase !== base && !childIsSuffix) return undefined;
  const what = childIsSuffix
    ? `every name under ${base} is a public suffix`
    : `${base} is a public suffix`;
  return `"*.${base}" is a wildcard over a public suffix (${what} on the Public Suffix List: anybody can have a name there and serve what they like from it); list the exact names you need, such as "your-name.${base}"`;
}

/** Warnings on an allowlist that is valid but lets the sandbox reach content anybody controls. */
export function allowlistWarnings(internet: { domains: readonly string[] }): SpecWarning[] {
  const warnings: SpecWarning[] = [];
  internet.domains.forEach((pattern, i) => {
    const parsed = parseDomainPattern(pattern);
    if (!parsed.ok) return;
    const path = `internet.domains[${i}]`;
    const shared = SHARED_CONTENT_HOSTS.filter((host) => ruleMatches(parsed.rule, host));
    if (shared.length > 0) {
      warnings.push({
        path,
        message: `"${parsed.rule.pattern}" allows ${shared.join(', ')}, which serve${shared.length === 1 ? 's' : ''} anybody's content: code in the sandbox can fetch an attacker's files or instructions there (and send data to it through requests); allow it only if you need it`,
      });
    }
    const resolvers = DNS_OVER_HTTPS_HOSTS.filter((host) => ruleMatches(parsed.rule, host));
    if (resolvers.length > 0) {
      warnings.push({
        path,
        message: `"${parsed.rule.pattern}" allows ${resolvers.join(', ')}, a DNS-over-HTTPS resolver: it looks up any name, so data can leave as DNS queries to a server anybody can run; allow it only if you need it`,
      });
    }
  });
  return warnings;
}
