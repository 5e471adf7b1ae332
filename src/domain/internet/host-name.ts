import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';

/**
 * Host names and allowlist patterns. Matching is always on the normalised name (lower case,
 * punycode, one trailing dot removed), on label boundaries, never on a raw substring.
 */

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Looks like an IPv4 address in any of the forms resolvers accept (127.1, 0x7f.1, 2130706433). */
function looksLikeIpv4(name: string): boolean {
  return /^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$/i.test(name);
}

export type HostNameResult = { ok: true; name: string } | { ok: false; reason: string };

/**
 * Normalises a host name as a user or a client sent it. Refuses IP literals in every form,
 * empty labels, and anything that is not a DNS name.
 */
export function normaliseHostName(raw: string): HostNameResult {
  if (raw.length === 0) return { ok: false, reason: 'empty host name' };
  if (raw.length > 253 + 1) return { ok: false, reason: 'host name too long' };
  // Before the character check: an IPv6 literal ([::1], fe80::1) is refused as what it is.
  const unbracketed = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
  if (isIP(unbracketed) !== 0) return { ok: false, reason: 'IP literals are not allowed' };
  if (/[\s\x00-\x1f\x7f/\\@:?#[\]%]/.test(raw)) {
    return { ok: false, reason: 'host name contains a character that is not allowed' };
  }
  let name = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (looksLikeIpv4(name)) return { ok: false, reason: 'IP literals are not allowed' };
  const ascii = domainToASCII(name.toLowerCase());
  if (ascii === '') return { ok: false, reason: 'not a valid domain name' };
  name = ascii.toLowerCase();
  const labels = name.split('.');
  if (labels.length < 2) return { ok: false, reason: 'a domain needs at least two labels' };
  for (const label of labels) {
    if (!LABEL.test(label)) return { ok: false, reason: `invalid label "${label}"` };
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    return { ok: false, reason: 'IP literals are not allowed' };
  }
  return { ok: true, name };
}

/** A parsed allowlist rule: an exact name, or every name strictly below a suffix. */
export interface DomainRule {
  pattern: string;
  kind: 'exact' | 'suffix';
  /** The normalised name (exact) or suffix without the "*." (suffix). */
  name: string;
}

export type DomainRuleResult = { ok: true; rule: DomainRule } | { ok: false; reason: string };

export function parseDomainPattern(pattern: string): DomainRuleResult {
  if (pattern.startsWith('*.')) {
    const rest = normaliseHostName(pattern.slice(2));
    if (!rest.ok) return { ok: false, reason: `"${pattern}": ${rest.reason}` };
    return { ok: true, rule: { pattern: `*.${rest.name}`, kind: 'suffix', name: rest.name } };
  }
  if (pattern.includes('*')) {
    return {
      ok: false,
      reason: `"${pattern}": a wildcard is only allowed as a whole first label ("*.example.com")`,
    };
  }
  const exact = normaliseHostName(pattern);
  if (!exact.ok) return { ok: false, reason: `"${pattern}": ${exact.reason}` };
  return { ok: true, rule: { pattern: exact.name, kind: 'exact', name: exact.name } };
}

/** Whether a normalised host name matches a rule; suffix rules match on a label boundary only. */
export function ruleMatches(rule: DomainRule, host: string): boolean {
  if (rule.kind === 'exact') return host === rule.name;
  return host.endsWith(`.${rule.name}`);
}

/** The first rule that matches the host, if any. */
export function findMatchingRule(
  rules: readonly DomainRule[],
  host: string,
): DomainRule | undefined {
  return rules.find((rule) => ruleMatches(rule, host));
}
