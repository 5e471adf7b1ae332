import { z } from 'zod';
import { parseByteSize } from '../internet/byte-size.js';
import { parseDomainPattern, ruleMatches, type DomainRule } from '../internet/host-name.js';
import { HTTP_METHODS } from '../internet/http-methods.js';
import { parsePathPattern } from '../internet/request-path.js';

/**
 * The parts of `internet` that narrow or use an allowed host (issue 19 items 1-3), and their
 * checks against the rest of the environment:
 * - `credentials: [{ host, header, secret, format }]`: the egress proxy sets `header` to
 *   `format` with `{value}` replaced by the secret's value on every HTTPS request to `host`
 *   (the sandbox never has the value);
 * - `rules: [{ host, methods, paths }]`: the first rule whose host and paths match a request
 *   decides its methods; a host with rules refuses paths none of them match;
 * - `budget: { requests, bytesOut, bytesIn }`: bounds per attempt.
 * Refused with the field path: a credential or rule for a host that is not allowed, for
 * `http://`, a credential naming a secret the environment does not declare, a rule with an
 * empty path list or an invalid method, a size in an unknown unit.
 */

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the proxy frames or routes by itself: a credential cannot be one of them. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
  'http2-settings',
  'expect',
]);
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A host as a credential or rule names it: a name or pattern, never a URL. */
function grantHost(allowWildcard: boolean) {
  return z.string().superRefine((host, ctx) => {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(host)?.[1]?.toLowerCase();
    if (scheme === 'http') {
      ctx.addIssue({
        code: 'custom',
        message:
          'HTTPS only: the proxy sets credentials and checks paths inside HTTPS requests it intercepts, never on plain http://; write the host name alone',
      });
      return;
    }
    if (scheme !== undefined) {
      ctx.addIssue({ code: 'custom', message: `write the host name alone, without ${scheme}://` });
      return;
    }
    if (!allowWildcard && host.startsWith('*')) {
      ctx.addIssue({
        code: 'custom',
        message: 'a credential names one host exactly (no wildcard): it is sent to that host only',
      });
      return;
    }
    const parsed = parseDomainPattern(host);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  });
}

const httpMethod = z
  .string()
  .transform((m) => m.toUpperCase())
  .refine((m) => (HTTP_METHODS as readonly string[]).includes(m), {
    message: `not an HTTP method Berth can allow (one of ${HTTP_METHODS.join(', ')})`,
  });

export const internetCredential = z.strictObject({
  host: grantHost(false),
  header: z
    .string()
    .regex(HEADER_NAME, 'not an HTTP header name')
    .max(100)
    .refine(
      (name) => !RESERVED_HEADERS.has(name.toLowerCase()),
      'the proxy sets this header itself; a credential cannot replace it',
    ),
  secret: z.string().regex(VARIABLE_NAME, "must be the name of one of the environment's secrets"),
  format: z
    .string()
    .max(500)
    .refine((f) => f.split('{value}').length === 2, 'the format holds "{value}" exactly once')
    .refine((f) => !/[\x00-\x1f\x7f]/.test(f), 'the format has no control characters')
    .default('{value}'),
});

export const internetRule = z.strictObject({
  host: grantHost(true),
  methods: z.array(httpMethod).min(1, 'a rule allows at least one method'),
  paths: z
    .array(
      z.string().superRefine((path, ctx) => {
        const parsed = parsePathPattern(path);
        if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
      }),
    )
    .min(1, 'a rule names at least one path (an empty list would allow nothing)')
    .max(100),
});

const byteSize = z.union([z.string(), z.number()]).superRefine((size, ctx) => {
  const parsed = parseByteSize(size);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
});

export const internetBudget = z.strictObject({
  /** Requests through the proxy per attempt (each request inside an intercepted tunnel counts). */
  requests: z.number().int().positive().max(1e9).optional(),
  /** Bytes sent out per attempt (request heads and bodies; every byte of a plain tunnel). */
  bytesOut: byteSize.optional(),
  /** Bytes received per attempt (response heads and bodies; every byte of a plain tunnel). */
  bytesIn: byteSize.optional(),
});

/** The internet fields these checks read. */
interface InternetGrants {
  access: 'off' | 'allowlist' | 'on';
  domains: readonly string[];
  tunnelOnly: readonly string[];
  credentials?: ReadonlyArray<{ host: string; header: string; secret: string }> | undefined;
  rules?: ReadonlyArray<{ host: string }> | undefined;
  budget?: object | undefined;
}

function parsed(pattern: string): DomainRule | undefined {
  const result = parseDomainPattern(pattern);
  return result.ok ? result.rule : undefined;
}

/** Whether every name `inner` matches is matched by `outer`. */
function covers(outer: DomainRule, inner: DomainRule): boolean {
  if (inner.kind === 'exact') return ruleMatches(outer, inner.name);
  if (outer.kind === 'exact') return false;
  return inner.name === outer.name || ruleMatches(outer, inner.name);
}

/** Whether `a` and `b` match a name in common. */
function overlaps(a: DomainRule, b: DomainRule): boolean {
  return covers(a, b) || covers(b, a);
}

/**
 * The checks of credentials, rules and budget against the rest of the environment (declared
 * secrets, allowed hosts, `tunnelOnly`), each refusal at its field path.
 */
export function refuseInvalidInternetGrants(
  internet: InternetGrants,
  secrets: readonly string[],
  ctx: z.RefinementCtx,
): void {
  const refuse = (path: Array<string | number>, message: string) =>
    ctx.addIssue({ code: 'custom', path: ['internet', ...path], message });
  const domains = internet.domains.map(parsed).filter((r) => r !== undefined);
  const tunnelOnly = internet.tunnelOnly.map(parsed).filter((r) => r !== undefined);
  const hostProblem = (host: DomainRule, what: string): string | undefined => {
    if (internet.access === 'off')
      return `the host is not allowed: internet.access is off (add "access: allowlist" and the host under domains)`;
    if (internet.access === 'allowlist' && !domains.some((d) => covers(d, host)))
      return `${host.pattern} is not allowed by internet.domains (add it there too: a ${what} does not allow a host by itself)`;
    const pinned = tunnelOnly.find((t) => overlaps(t, host));
    if (pinned !== undefined)
      return `${host.pattern} is under tunnelOnly (${pinned.pattern}): its HTTPS is never intercepted, so a ${what} could not apply`;
    return undefined;
  };
  const seen = new Set<string>();
  for (const [i, credential] of (internet.credentials ?? []).entries()) {
    const host = parsed(credential.host);
    if (host === undefined) continue;
    const problem = hostProblem(host, 'credential');
    if (problem !== undefined) refuse(['credentials', i, 'host'], problem);
    if (!secrets.includes(credential.secret)) {
      refuse(
        ['credentials', i, 'secret'],
        `"${credential.secret}" is not one of this environment's secrets (add it under "secrets")`,
      );
    }
    const key = `${host.name}\n${credential.header.toLowerCase()}`;
    if (seen.has(key))
      refuse(['credentials', i, 'header'], `a second credential for ${host.name} in this header`);
    seen.add(key);
  }
  for (const [i, rule] of (internet.rules ?? []).entries()) {
    const host = parsed(rule.host);
    if (host === undefined) continue;
    const problem = hostProblem(host, 'rule');
    if (problem !== undefined) refuse(['rules', i, 'host'], problem);
  }
  if (internet.budget !== undefined && internet.access === 'off') {
    refuse(
      ['budget'],
      'does nothing while internet.access is off (the default: nothing leaves the sandbox)',
    );
  }
}

/** The names of the secrets `internet.credentials` uses: the proxy's, never a script's. */
export function credentialSecretNames(internet: {
  credentials?: ReadonlyArray<{ secret: string }> | undefined;
}): Set<string> {
  return new Set((internet.credentials ?? []).map((c) => c.secret));
}

/**
 * The secrets setup and maintenance get (and the cache key digests): all but those used only as
 * a credential of the proxy (named by `internet.credentials` and not by `repository.credentials`).
 */
export function scriptSecrets(
  spec: {
    internet: { credentials?: ReadonlyArray<{ secret: string }> | undefined };
    repository: { credentials?: { secret: string } | undefined };
  },
  secrets: Readonly<Record<string, string>>,
): Record<string, string> {
  const withheld = credentialSecretNames(spec.internet);
  const repository = spec.repository.credentials?.secret;
  if (repository !== undefined) withheld.delete(repository);
  return Object.fromEntries(Object.entries(secrets).filter(([name]) => !withheld.has(name)));
}
