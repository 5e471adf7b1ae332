import type { InternetPolicy } from '../environment/environment-spec.js';
import { commonDependencyHosts, type ImagePackageConfiguration } from './preset-hosts.js';
import { BerthError } from '../../errors/berth-error.js';
import {
  findMatchingRule,
  normaliseHostName,
  parseDomainPattern,
  ruleMatches,
  type DomainRule,
} from './host-name.js';
import { normaliseRequestTarget, parsePathPattern, type PathPattern } from './request-path.js';

/**
 * The internet policy of one attempt as the egress proxy applies it. Pure: no I/O, plain values
 * in and out, so every decision can be tested and explained.
 *
 * - `off`: nothing is allowed.
 * - `allowlist`: only hosts matching an exact rule or a `*.suffix` rule (custom domains and
 *   preset expansions), on the normalised name.
 * - `on`: every host name is allowed (the proxy still refuses non-public addresses, and every
 *   decision is still logged).
 * In every mode: IP literals and malformed names are refused, ports are 443 for tunnels and 80
 * for plain HTTP unless the operator allowed more, and when the environment limits methods
 * only those methods pass (HTTPS is then intercepted, except for `tunnelOnly` hosts).
 *
 * `rules` narrow allowed hosts by method and path: for a host that some rule names, the first
 * rule whose host matches and one of whose paths matches the request's normalised path decides
 * (its methods, not the environment's); a path no rule of the host matches is refused. Hosts
 * without a rule keep the environment's `methods`. HTTPS to a host with a rule or a credential
 * is always intercepted (also when the host is under `tunnelOnly`): a rule or a credential
 * cannot apply to a tunnel the proxy does not read. TRACE and TRACK (any case) are refused on a
 * host with a credential: the answer echoes the request, the credential the proxy set included.
 */

/** How a request reaches the proxy. */
export type EgressScheme =
  /** The CONNECT request itself (opens a tunnel). */
  | 'connect'
  /** A plain HTTP request in absolute form. */
  | 'http'
  /** A request read inside an intercepted TLS tunnel. */
  | 'https';

export interface EgressRequest {
  host: string;
  port: number;
  method?: string;
  scheme: EgressScheme;
  /** The request target in origin form (`/path?query`), for `rules`. */
  target?: string;
}

export interface EgressDecision {
  allowed: boolean;
  /** The rule that decided: `domain:*.example.com`, `preset:common-dependencies:pypi.org`, `access:on`, `access:off`, `no-match`, `port`, `method`, `host`. */
  rule: string;
  reason: string;
  /** The normalised host name, when the host was a valid name. */
  host?: string;
  /** For an allowed CONNECT: whether the tunnel is intercepted (method limits) or passed through. */
  tunnel?: 'intercept' | 'passthrough';
  /**
   * For an allowed request to a host with rules: the normalised target the rules were checked
   * on, which is what goes upstream (never the raw one).
   */
  forward?: string;
}

interface MethodPathRule {
  index: number;
  host: DomainRule;
  methods: ReadonlySet<string>;
  paths: PathPattern[];
}

export interface EgressPolicyOptions {
  /** The expansion of each preset the environment names (host names or `*.suffix` patterns). */
  presets?: Readonly<Record<string, readonly string[]>>;
  /** Ports allowed besides the defaults (443 for tunnels, 80 for plain HTTP). */
  extraPorts?: { tunnel?: readonly number[]; http?: readonly number[] };
}

interface SourcedRule {
  rule: DomainRule;
  source: string;
  /** Ports this rule allows besides the defaults (from a preset entry such as `mirror.example:8081`). */
  ports?: ReadonlySet<number>;
}

export const DEFAULT_TUNNEL_PORTS: readonly number[] = [443];
export const DEFAULT_HTTP_PORTS: readonly number[] = [80];

const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export class EgressPolicy {
  readonly access: InternetPolicy['access'];
  /** Allowed methods, or undefined when methods are not limited. */
  readonly methods: ReadonlySet<string> | undefined;
  private readonly rules: SourcedRule[];
  private readonly tunnelOnly: DomainRule[];
  private readonly methodPathRules: MethodPathRule[];
  private readonly credentialHosts: DomainRule[];
  private readonly tunnelPorts: ReadonlySet<number>;
  private readonly httpPorts: ReadonlySet<number>;

  constructor(internet: InternetPolicy, options: EgressPolicyOptions = {}) {
    this.access = internet.access;
    this.methods =
      internet.methods !== undefined && internet.methods.length > 0
        ? new Set(internet.methods.map((m) => m.toUpperCase()))
        : undefined;
    this.rules = [];
    for (const pattern of internet.domains)
      this.rules.push({ rule: mustParse(pattern), source: 'domain' });
    for (const preset of internet.presets) {
      const expansion = options.presets?.[preset];
      if (expansion === undefined) continue;
      for (const entry of expansion) {
        // An entry is a pattern, optionally with one port (`mirror.example:8081`).
        const withPort = /^(.*):([1-9][0-9]{0,4})$/.exec(entry);
        const pattern = withPort?.[1] ?? entry;
        const port = withPort?.[2] !== undefined ? Number(withPort[2]) : undefined;
        const parsed = parseDomainPattern(pattern);
        // A preset expansion comes partly from an image's configuration; a bad entry is skipped, not fatal.
        if (!parsed.ok || (port !== undefined && port > 65535)) continue;
        this.rules.push({
          rule: parsed.rule,
          source: `preset:${preset}`,
          ...(port !== undefined ? { ports: new Set([port]) } : {}),
        });
      }
    }
    this.tunnelOnly = internet.tunnelOnly.map(mustParse);
    this.methodPathRules = (internet.rules ?? []).map((rule, index) => ({
      index,
      host: mustParse(rule.host),
      methods: new Set(rule.methods.map((m) => m.toUpperCase())),
      paths: rule.paths.map(mustParsePath),
    }));
    this.credentialHosts = (internet.credentials ?? []).map((c) => mustParse(c.host));
    this.tunnelPorts = new Set([...DEFAULT_TUNNEL_PORTS, ...(options.extraPorts?.tunnel ?? [])]);
    this.httpPorts = new Set([...DEFAULT_HTTP_PORTS, ...(options.extraPorts?.http ?? [])]);
  }

  /** The policy of an environment, with presets expanded for the image it runs in. */
  static forEnvironment(
    internet: InternetPolicy,
    image: ImagePackageConfiguration = {},
    extraPorts?: EgressPolicyOptions['extraPorts'],
  ): EgressPolicy {
    return new EgressPolicy(internet, {
      presets: { 'common-dependencies': commonDependencyHosts(image) },
      ...(extraPorts !== undefined ? { extraPorts } : {}),
    });
  }

  /** Whether HTTPS to this (normalised) host is intercepted to check methods. */
  intercepts(host: string): boolean {
    if (this.hasRules(host) || this.credentialHosts.some((rule) => ruleMatches(rule, host)))
      return true;
    return this.methods !== undefined && findMatchingRule(this.tunnelOnly, host) === undefined;
  }

  /** Whether some of `rules` name this (normalised) host. */
  hasRules(host: string): boolean {
    return this.methodPathRules.some((rule) => ruleMatches(rule.host, host));
  }

  /** Whether requests to this host are limited by method (the environment's or its rules'). */
  limitsMethods(host: string): boolean {
    return this.methods !== undefined || this.hasRules(host);
  }

  decide(request: EgressRequest): EgressDecision {
    if (this.access === 'off') {
      return {
        allowed: false,
        rule: 'access:off',
        reason: 'internet access is off for this environment',
      };
    }
    const name = normaliseHostName(request.host);
    if (!name.ok) return { allowed: false, rule: 'host', reason: name.reason };
    const host = name.name;

    const ports = request.scheme === 'http' ? this.httpPorts : this.tunnelPorts;
    const portRefusal = (): EgressDecision => ({
      allowed: false,
      rule: 'port',
      reason: `port ${request.port} is not allowed for ${request.scheme === 'http' ? 'plain HTTP' : 'HTTPS'} (allowed: ${[...ports].join(', ')})`,
      host,
    });
    if (!Number.isInteger(request.port)) return portRefusal();

    let rule: string;
    if (this.access === 'on') {
      if (!ports.has(request.port)) return portRefusal();
      rule = 'access:on';
    } else {
      const matches = this.rules.filter((r) => findMatchingRule([r.rule], host) !== undefined);
      const first = matches[0];
      if (first === undefined) {
        return {
          allowed: false,
          rule: 'no-match',
          reason: `${host} is not on the allowlist`,
          host,
        };
      }
      // The default ports for the scheme, or a port a matching rule names for itself.
      const match = ports.has(request.port)
        ? first
        : matches.find((r) => r.ports?.has(request.port) === true);
      if (match === undefined) return portRefusal();
      rule = `${match.source}:${match.rule.pattern}`;
    }

    if (request.scheme === 'connect') {
      const tunnel = this.intercepts(host) ? 'intercept' : 'passthrough';
      return {
        allowed: true,
        rule,
        reason:
          tunnel === 'passthrough'
            ? 'allowed'
            : this.methods !== undefined
              ? 'allowed; methods are checked'
              : 'allowed; requests are checked',
        host,
        tunnel,
      };
    }

    const method = request.method ?? '';
    if (!HTTP_TOKEN.test(method))
      return { allowed: false, rule: 'method', reason: 'not a valid HTTP method', host };
    if (method === 'CONNECT') {
      return { allowed: false, rule: 'method', reason: 'CONNECT is not allowed here', host };
    }
    // The answer to TRACE (TRACK on some servers) is the request itself, header the proxy set
    // included: never sent where a credential goes (any case: some servers read `trace` too).
    const echo = method.toUpperCase();
    if (
      (echo === 'TRACE' || echo === 'TRACK') &&
      this.credentialHosts.some((credential) => ruleMatches(credential, host))
    ) {
      return {
        allowed: false,
        rule: 'method',
        reason: `${method} is never sent to a host the proxy adds a credential to (its answer would echo the credential)`,
        host,
      };
    }
    if (this.hasRules(host)) return this.decideByRules(host, method, request.target ?? '', rule);
    if (this.methods !== undefined && !this.methods.has(method)) {
      return {
        allowed: false,
        rule: 'method',
        reason: `method not allowed (allowed: ${[...this.methods].join(', ')})`,
        host,
      };
    }
    return { allowed: true, rule, reason: 'allowed', host };
  }

  /** A request to a host with rules: the first rule matching host and path decides. */
  private decideByRules(
    host: string,
    method: string,
    target: string,
    hostRule: string,
  ): EgressDecision {
    const normal = normaliseRequestTarget(target);
    if (!normal.ok) return { allowed: false, rule: 'path', reason: normal.reason, host };
    const path = normal.path;
    for (const rule of this.methodPathRules) {
      if (!ruleMatches(rule.host, host)) continue;
      const pattern = rule.paths.find((p) => p.matches(path));
      if (pattern === undefined) continue;
      if (!rule.methods.has(method)) {
        return {
          allowed: false,
          rule: 'method',
          reason: `method not allowed on ${printablePath(path)} (internet.rules[${rule.index}] allows: ${[...rule.methods].join(', ')})`,
          host,
        };
      }
      return {
        allowed: true,
        rule: `${hostRule} rules[${rule.index}]:${pattern.pattern}`,
        reason: 'allowed',
        host,
        forward: normal.forward,
      };
    }
    return {
      allowed: false,
      rule: 'path',
      reason: `path ${printablePath(path)} is not allowed (no internet.rules entry for ${host} matches it)`,
      host,
    };
  }
}

function printablePath(path: string): string {
  return path.length > 200 ? `${path.slice(0, 200)}...` : path;
}

function mustParsePath(pattern: string): PathPattern {
  const parsed = parsePathPattern(pattern);
  if (!parsed.ok) {
    throw new BerthError('invalid_environment', `invalid path pattern: ${parsed.reason}`, {
      pattern,
    });
  }
  return parsed.pattern;
}

function mustParse(pattern: string): DomainRule {
  const parsed = parseDomainPattern(pattern);
  // The environment schema validated these already; a failure here is a programming error.
  if (!parsed.ok) {
    throw new BerthError('invalid_environment', `invalid domain pattern: ${parsed.reason}`, {
      pattern,
    });
  }
  return parsed.rule;
}
