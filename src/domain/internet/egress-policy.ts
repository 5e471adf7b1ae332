import type { InternetPolicy } from '../environment/environment-spec.js';
import { commonDependencyHosts, type ImagePackageConfiguration } from './preset-hosts.js';
import { BerthError } from '../../errors/berth-error.js';
import {
  findMatchingRule,
  normaliseHostName,
  parseDomainPattern,
  type DomainRule,
} from './host-name.js';

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
    return this.methods !== undefined && findMatchingRule(this.tunnelOnly, host) === undefined;
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
        reason: tunnel === 'intercept' ? 'allowed; methods are checked' : 'allowed',
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
