/**
 * Threat model. The setup network is the only network a sandbox has while the environment's setup
 * and maintenance scripts run (and a remote repository is fetched): code from the internet runs
 * there as root, with the environment's secrets in its process environment. "Internet" must mean
 * the public internet: not the host's own services, not the cloud metadata service, not the
 * site's private network, not other sandboxes. This guard puts the setup network's firewall
 * (setup-network-firewall.ts) in place after the network is made and before any sandbox joins
 * it, and takes it away when the attempt ends.
 *
 * Trusted: the operator's allowances (`BERTH_SETUP_ALLOW`; the egress proxy's `BERTH_EGRESS_ALLOW`
 * opens nothing here), the host's resolv.conf (its resolvers keep port 53 open, since Docker's
 * embedded DNS forwards from the sandbox's namespace). A failure to install the rules fails the
 * attempt: setup never runs on an unguarded network.
 *
 * Behind a corporate proxy (the server's HTTPS_PROXY/HTTP_PROXY or BERTH_UPSTREAM_PROXY), setup
 * goes to that proxy directly: its addresses (resolved when each setup network is guarded) are
 * opened like a `BERTH_SETUP_ALLOW` range, and setup and maintenance get HTTPS_PROXY, HTTP_PROXY
 * and NO_PROXY (both cases) pointing at it WITHOUT its credentials (`scriptEnv`): the server's
 * proxy account never enters a sandbox. What setup reaches through that proxy is that proxy's
 * policy (often the site's intranet too): opening it widens setup's reach by exactly that.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import {
  IptablesSetupFirewall,
  type SetupNetworkFirewall,
  type SetupNetworkFirewallSpec,
} from '../adapters/firewall/setup-network-firewall.js';
import { lookup } from 'node:dns/promises';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import { parseCidr, parseIpAddress } from './address-guard.js';
import { describeProxy, type UpstreamProxy, type UpstreamProxySettings } from './upstream-proxy.js';
import { sweepStaleSetupRules } from './sweep-stale-egress-rules.js';

export interface SetupNetworkGuardOptions {
  /** Address ranges (CIDR) the setup network may reach besides the public internet (`BERTH_SETUP_ALLOW`). */
  allow?: readonly string[];
  firewall?: SetupNetworkFirewall;
  /** The host's resolvers (default: read from /etc/resolv.conf, or systemd-resolved's file). */
  resolvers?: () => string[];
  /** Removes the rules of setup networks whose bridge is gone (default: `sweepStaleSetupRules`). */
  sweep?: () => Promise<unknown>;
  /** The server's upstream proxy: setup reaches it directly (its addresses are opened). */
  upstreamProxy?: UpstreamProxySettings | undefined;
  /** Resolves the upstream proxy's name (default: the system resolver, every address). */
  resolveProxy?: (host: string) => Promise<string[]>;
}

/** The proxy URL a setup script is given: the server's upstream proxy without its credentials. */
function proxyUrl(proxy: UpstreamProxy): string {
  return `http://${proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host}:${proxy.port}`;
}

/**
 * The variables setup and maintenance get behind an upstream proxy (both cases, as tools
 * disagree): the proxy without credentials, NO_PROXY with the server's entries and loopback.
 */
export function setupProxyEnv(settings: UpstreamProxySettings | undefined): Record<string, string> {
  if (settings === undefined) return {};
  const env: Record<string, string> = {};
  if (settings.https !== undefined) env.HTTPS_PROXY = env.https_proxy = proxyUrl(settings.https);
  if (settings.http !== undefined) env.HTTP_PROXY = env.http_proxy = proxyUrl(settings.http);
  const noProxy = [
    'localhost',
    '127.0.0.1',
    '::1',
    ...settings.noProxy.map((e) => (e.port === undefined ? e.name : `${e.name}:${e.port}`)),
  ];
  env.NO_PROXY = env.no_proxy = [...new Set(noProxy)].join(',');
  return env;
}

/** What an attempt is told about its setup network (one line of its log). */
export interface GuardedSetupNetwork {
  description: string;
  /** The IPv6 rules were skipped (ip6tables is not usable here). */
  ipv6Skipped: boolean;
}

/** A short, stable id for an attempt's setup network (its bridge and chain names). */
export function setupNetworkIdOf(attemptId: string): string {
  return createHash('sha256').update(`setup:${attemptId}`).digest('hex').slice(0, 12);
}

/** The bridge interface of an attempt's setup network: `bs` + the network id (12 hex). */
export function setupBridgeName(networkId: string): string {
  return `bs${networkId}`;
}

/** Nameserver addresses in resolv.conf text, loopback ones left out (Docker asks those from the host). */
export function resolversIn(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const address = /^\s*nameserver\s+(\S+)/.exec(line)?.[1]?.replace(/%.*$/, '');
    if (address === undefined) continue;
    const parsed = parseIpAddress(address);
    if (parsed === undefined) continue;
    const loopback =
      (parsed.family === 4 && parsed.value >> 24n === 127n) ||
      (parsed.family === 6 && parsed.value === 1n);
    if (!loopback) out.push(address);
  }
  return out;
}

/** The `dns` servers of a Docker daemon configuration (daemon.json), loopback left out. */
export function daemonResolversIn(text: string): string[] {
  try {
    const dns = (JSON.parse(text) as { dns?: unknown }).dns;
    if (!Array.isArray(dns)) return [];
    return resolversIn(dns.map((address) => `nameserver ${String(address)}`).join('\n'));
  } catch {
    return [];
  }
}

/**
 * The resolvers Docker's embedded DNS forwards to from a sandbox's namespace: the daemon's own
 * `dns` setting where /etc/docker/daemon.json has one, else the host's resolv.conf.
 */
export function hostResolvers(): string[] {
  const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  const daemon = daemonResolversIn(read('/etc/docker/daemon.json'));
  if (daemon.length > 0) return daemon;
  const own = resolversIn(read('/etc/resolv.conf'));
  // systemd-resolved's stub is loopback; Docker then uses the upstream list instead.
  return own.length > 0 ? own : resolversIn(read('/run/systemd/resolve/resolv.conf'));
}

export class SetupNetworkGuard {
  readonly allow: readonly string[];
  private readonly firewall: SetupNetworkFirewall;
  private readonly resolvers: () => string[];
  private readonly sweep: () => Promise<unknown>;
  private readonly installed = new Map<
    string,
    Pick<SetupNetworkFirewallSpec, 'networkId' | 'bridge'>
  >();
  /**
   * Rules left by an orchestrator that died mid-attempt are swept once, at the first setup
   * network; again after a network whose removal failed (`releaseWhenGone`).
   */
  private swept: Promise<unknown> | undefined;

  private readonly upstreamProxy: UpstreamProxySettings | undefined;
  private readonly resolveProxy: (host: string) => Promise<string[]>;

  constructor(options: SetupNetworkGuardOptions = {}) {
    this.allow = [...(options.allow ?? [])];
    this.upstreamProxy = options.upstreamProxy;
    this.resolveProxy =
      options.resolveProxy ??
      (async (host) => (await lookup(host, { all: true })).map((a) => a.address));
    for (const range of this.allow) parseCidr(range);
    this.firewall = options.firewall ?? new IptablesSetupFirewall();
    this.resolvers = options.resolvers ?? hostResolvers;
    this.sweep = options.sweep ?? (() => sweepStaleSetupRules());
  }

  /** Variables for setup and maintenance scripts (the upstream proxy, no credentials). */
  scriptEnv(): Record<string, string> {
    return setupProxyEnv(this.upstreamProxy);
  }

  /**
   * The upstream proxies' addresses as ranges to open (one address each), resolved now; and a
   * line for the log (a name that does not resolve is named there, and setup will not reach it).
   */
  private async proxyRanges(): Promise<{ ranges: string[]; note: string }> {
    const settings = this.upstreamProxy;
    if (settings === undefined) return { ranges: [], note: '' };
    const proxies = [settings.https, settings.http].filter(
      (p, i, all): p is UpstreamProxy =>
        p !== undefined && all.findIndex((q) => q?.host === p.host && q.port === p.port) === i,
    );
    const ranges: string[] = [];
    const notes: string[] = [];
    for (const proxy of proxies) {
      let addresses: string[];
      try {
        addresses =
          parseIpAddress(proxy.host) !== undefined
            ? [proxy.host]
            : await this.resolveProxy(proxy.host);
      } catch {
        addresses = [];
      }
      for (const address of addresses)
        ranges.push(`${address}/${parseIpAddress(address)?.family === 6 ? 128 : 32}`);
      notes.push(
        `${describeProxy(proxy)} at ${addresses.length > 0 ? addresses.join(', ') : 'no address (not resolved)'}`,
      );
    }
    return { ranges, note: `; upstream proxy: ${notes.join('; ')}` };
  }

  /** The bridge name to make the attempt's setup network with. */
  bridgeFor(attemptId: string): string {
    return setupBridgeName(setupNetworkIdOf(attemptId));
  }

  /** Installs the firewall of the attempt's setup network (made with `bridgeFor`'s bridge name). */
  async protect(attemptId: string, signal?: AbortSignal): Promise<GuardedSetupNetwork> {
    this.swept ??= this.sweep().catch(() => []);
    await this.swept;
    const networkId = setupNetworkIdOf(attemptId);
    const resolvers = this.resolvers();
    const proxy = await this.proxyRanges();
    const spec: SetupNetworkFirewallSpec = {
      networkId,
      bridge: setupBridgeName(networkId),
      allow: [...new Set([...this.allow, ...proxy.ranges])],
      resolvers,
    };
    this.installed.set(attemptId, spec);
    let ipv6Skipped: boolean;
    try {
      ({ ipv6Skipped } = await this.firewall.install(spec, signal));
    } catch (error) {
      await this.release(attemptId).catch(() => undefined);
      const reason = toBerthError(error).message;
      throw new BerthError(
        'runtime_unavailable',
        `the setup network's firewall could not be installed (setup does not run without it): ${reason}`,
      );
    }
    const allowed = this.allow.length > 0 ? this.allow.join(', ') : 'none';
    const dns = resolvers.length > 0 ? `; DNS: port 53 of ${resolvers.join(', ')}` : '';
    return {
      ipv6Skipped,
      description: `setup network: public internet only (host, private, link-local refused; allowed: ${allowed}${dns}${proxy.note})`,
    };
  }

  /**
   * The attempt's network could not be removed: its rules stay (a sandbox may still be on its
   * bridge) and go with the sweep of rules whose bridge is gone, at the next setup network.
   */
  releaseWhenGone(attemptId: string): void {
    if (!this.installed.delete(attemptId)) return;
    this.swept = undefined;
  }

  /** Removes the attempt's rules; safe to repeat. */
  async release(attemptId: string): Promise<void> {
    const spec = this.installed.get(attemptId);
    if (spec === undefined) return;
    await this.firewall.remove(spec);
    this.installed.delete(attemptId);
  }
}
