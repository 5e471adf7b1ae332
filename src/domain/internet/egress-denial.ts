import type { InternetPolicy } from '../environment/environment-spec.js';

/**
 * Denials of the egress proxy explained, to the model and to the person. Pure: no I/O.
 *
 * - `denialLine`: the one line the proxy answers a refusal with (its 403 body), and what a
 *   command's tool result ends with: `berth egress: POST api.example.test denied: method not
 *   allowed (allowed: GET, HEAD, OPTIONS)`. Host, method and reason come from the sandbox (a
 *   hostile client names what it likes), so every part is made printable and bounded.
 * - `deniedHosts`: the denied hosts of an attempt, each with the change to the environment file
 *   that would allow it. A suggestion for a person to review; nothing applies it.
 */

/** A refusal as the proxy reports it (`onDecision`, the attempt log's `egress` events). */
export interface EgressDenial {
  host: string;
  port: number;
  method: string;
  /** `connect`, `http` or `https`. */
  scheme: string;
  rule: string;
  reason: string;
}

export interface DeniedHost {
  host: string;
  method: string;
  reason: string;
  /** The change to the environment file (or to the server's settings) that would allow it. */
  suggestion: string;
}

/** Denied hosts kept per attempt: a sandbox can try any number of names. */
export const MAX_DENIED_HOSTS = 50;

const MAX_PART = 256;

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_PART);
}

/** The rules that are a denial of something (not a malformed request or an upstream failure). */
export function isDenial(rule: string): boolean {
  return (
    rule === 'no-match' ||
    rule === 'access:off' ||
    rule === 'method' ||
    rule === 'port' ||
    rule === 'host' ||
    rule === 'path' ||
    rule === 'budget' ||
    rule.startsWith('address:')
  );
}

function defaultPort(scheme: string): number {
  return scheme === 'http' ? 80 : 443;
}

/** The one line a refusal is explained with (no line break; the caller adds one). */
export function denialLine(denial: {
  method: string;
  host: string;
  port?: number | undefined;
  scheme: string;
  reason: string;
}): string {
  const host = printable(denial.host) || '(no host)';
  const port =
    denial.port !== undefined && denial.port !== 0 && denial.port !== defaultPort(denial.scheme)
      ? `:${denial.port}`
      : '';
  const method = printable(denial.method) || '(no method)';
  return `berth egress: ${method} ${host}${port} denied: ${printable(denial.reason)}`;
}

const yamlList = (items: readonly string[]) => `[${items.join(', ')}]`;

/** The change to the environment file that would allow a denial (never applied by Berth). */
export function suggestionFor(denial: EgressDenial, internet: InternetPolicy): string {
  const host = printable(denial.host);
  const method = printable(denial.method);
  if (denial.rule === 'access:off' || denial.rule === 'no-match') {
    const domains = yamlList([...internet.domains, host]);
    return denial.rule === 'access:off' || internet.access !== 'allowlist'
      ? `internet: { access: allowlist, domains: ${yamlList([host])} } (internet is off for this environment)`
      : `internet.domains: ${domains} (add "${host}")`;
  }
  const ruleIndex = /internet\.rules\[(\d+)\]/.exec(denial.reason)?.[1];
  if (denial.rule === 'method' && ruleIndex !== undefined) {
    const rule = internet.rules?.[Number(ruleIndex)];
    const methods = yamlList([...(rule?.methods ?? []), method]);
    return `internet.rules[${ruleIndex}].methods: ${methods} (add ${method} for that rule's paths)`;
  }
  if (denial.rule === 'path') {
    const path = printable(/^path (\S+) is not allowed/.exec(denial.reason)?.[1] ?? '/…');
    return `internet.rules: add { host: ${host}, methods: [${method}], paths: ["${path}"] } (rules are tried in order; the first whose host and paths match decides)`;
  }
  if (denial.rule === 'budget') {
    const field = /internet\.budget\.(requests|bytesOut|bytesIn)/.exec(denial.reason)?.[1];
    return `internet.budget.${field ?? 'requests'}: raise it (it bounds every attempt of this environment)`;
  }
  if (denial.rule === 'method') {
    const methods = yamlList([...(internet.methods ?? []), method]);
    return `internet.methods: ${methods} (add ${method}; it then applies to every allowed host)`;
  }
  if (denial.rule === 'port') {
    return `not in the environment file: port ${denial.port} is opened by the server's operator (BERTH_EGRESS_PORTS)`;
  }
  if (denial.rule.startsWith('address:')) {
    return `not in the environment file: ${host} resolves to an address the proxy refuses by default (${printable(denial.rule.slice('address:'.length))}); the server's operator can allow that range with BERTH_EGRESS_ALLOW`;
  }
  return 'none: the request named its host in a way that is never allowed (an IP literal or a malformed name); use the host name';
}

/**
 * The denied hosts of an attempt with a suggestion each: one entry per host and kind of fix
 * (a method denial per method), in the order first seen, at most MAX_DENIED_HOSTS.
 */
export function deniedHosts(
  denials: Iterable<EgressDenial>,
  internet: InternetPolicy,
): DeniedHost[] {
  const seen = new Map<string, DeniedHost>();
  for (const denial of denials) {
    if (!isDenial(denial.rule)) continue;
    const key = `${denial.host}\n${denial.rule === 'method' ? `method:${denial.method}` : denial.rule}`;
    if (seen.has(key)) continue;
    if (seen.size >= MAX_DENIED_HOSTS) break;
    seen.set(key, {
      host: printable(denial.host),
      method: printable(denial.method),
      reason: printable(denial.reason),
      suggestion: suggestionFor(denial, internet),
    });
  }
  return [...seen.values()];
}
