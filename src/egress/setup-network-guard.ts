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
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import {
  IptablesSetupFirewall,
  type SetupNetworkFirewall,
  type SetupNetworkFirewallSpec,
} from '../adapters/firewall/setup-network-firewall.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import { parseCidr, parseIpAddress } from './address-guard.js';
import { sweepStaleSetupRules } from './sweep-stale-egress-rules.js';

export interface SetupNetworkGuardOptions {
  /** Address ranges (CIDR) the setup network may reach besides the public internet (`BERTH_SETUP_ALLOW`). */
  allow?: readonly string[];
  firewall?: SetupNetworkFirewall;
  /** The host's resolvers (default: read from /etc/resolv.conf, or systemd-resolved's file). */
  resolvers?: () => string[];
  /** Removes the rules of setup networks whose bridge is gone (default: `sweepStaleSetupRules`). */
  sweep?: () => Promise<unknown>;
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

  constructor(options: SetupNetworkGuardOptions = {}) {
    this.allow = [...(options.allow ?? [])];
    for (const range of this.allow) parseCidr(range);
    this.firewall = options.firewall ?? new IptablesSetupFirewall();
    this.resolvers = options.resolvers ?? hostResolvers;
    this.sweep = options.sweep ?? (() => sweepStaleSetupRules());
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
    const spec: SetupNetworkFirewallSpec = {
      networkId,
      bridge: setupBridgeName(networkId),
      allow: this.allow,
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
      description: `setup network: public internet only (host, private, link-local refused; allowed: ${allowed}${dns})`,
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
