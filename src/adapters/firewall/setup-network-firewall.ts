/**
 * Threat model. During setup and maintenance (and `env test` up to lockdown) a sandbox sits on
 * its attempt's own Docker bridge network with a route out, and runs code from the internet as
 * root: every dependency's install script. From its interface it can send anything to any
 * address: to the host itself (every address of it: the bridge gateway, `docker0`, the outward
 * interfaces, all of which reach a service bound to 0.0.0.0), to other containers and sandboxes,
 * to the cloud metadata service, to the site's private network.
 *
 * Trusted: the host's netfilter, Docker's bridge for this network (its interface name), the
 * operator's allowances (`BERTH_SETUP_ALLOW`, plus the exact addresses of the server's upstream
 * proxy, added by setup-network-guard.ts: setup then reaches whatever that proxy forwards) and
 * the host's own DNS resolvers (read from its resolv.conf by the caller).
 *
 * Guarantees, keyed on the bridge interface (not on source addresses, so spoofing does not help):
 * - INPUT (IPv4 and IPv6): nothing from the bridge reaches the host itself, whichever of its
 *   addresses it is sent to, except an address an allowance names exactly (`/32`, `/128`): a
 *   wider allowance (`172.16.0.0/12`, `10.0.0.0/8`) never opens the host, even when it covers
 *   the host's bridge gateways (the egress proxies listen there) or outward addresses.
 * - FORWARD (through DOCKER-USER, and FORWARD itself in case Docker's chain is not consulted):
 *   a packet from the bridge is forwarded only to a public address: every range the egress
 *   proxy's address guard refuses (loopback, private, carrier-grade NAT, link-local and the
 *   metadata addresses, documentation, benchmarking, multicast, reserved; in IPv6 everything
 *   outside global unicast, unique local, link-local and the ranges that embed an IPv4 address)
 *   is dropped, and so is anything leaving through another Docker bridge (other sandboxes, other
 *   networks), whatever its address. Exceptions: checked first, an allowance naming one address
 *   and port 53 (UDP and TCP) of the host's resolvers (Docker's embedded DNS forwards a sandbox's
 *   queries from the sandbox's own network namespace); after the other-bridges drop, a wider
 *   allowance (any port), so one that overlaps Docker's address pools opens no container.
 * - Where ip6tables is not usable (and not required) the IPv6 rules are skipped and `install`
 *   says so; the network is made without IPv6 and the sandbox has IPv6 turned off.
 * Installing is idempotent (per-network chains flushed and refilled; jumps added only when
 * missing) and removal deletes exactly what install added, whatever the allowances were.
 */
import {
  GLOBAL_UNICAST_V6_TEXT,
  parseCidr,
  parseIpAddress,
  REFUSED_ADDRESS_RANGES,
} from '../../egress/address-guard.js';
import { BerthError } from '../../errors/berth-error.js';
import { execFileRunner, type CommandResult, type CommandRunner } from './iptables-firewall.js';

export interface SetupNetworkFirewallSpec {
  /** A short id of the network (12 hex digits; names the chains and comments the rules). */
  networkId: string;
  /** The bridge interface of the network (`bs…`). */
  bridge: string;
  /** Address ranges (CIDR, IPv4 or IPv6) the sandbox may reach, host addresses included. */
  allow: readonly string[];
  /** The host's DNS resolvers (addresses): port 53 stays open to them. */
  resolvers: readonly string[];
}

type Tool = 'iptables' | 'ip6tables';

interface HeadRule {
  tool: Tool;
  chain: 'INPUT' | 'FORWARD' | 'DOCKER-USER';
  spec: string[];
}

export interface SetupFirewallPlan {
  /** Chain names: hosts' own addresses (INPUT) and forwarding. */
  inputChain: string;
  forwardChain: string;
  /** The rules of each chain, by tool. */
  chains: Array<{ tool: Tool; chain: string; rules: string[][] }>;
  headRules: HeadRule[];
}

/** The comment on every head rule: `berth-setup:<id>` (what the sweep looks for). */
export function setupRuleComment(networkId: string): string {
  return `berth-setup:${networkId}`;
}

/** The chains of a setup network: `BERTH-SI-<ID>` (input) and `BERTH-SF-<ID>` (forward). */
export function setupChainNames(networkId: string): { input: string; forward: string } {
  const id = networkId.toUpperCase();
  return { input: `BERTH-SI-${id}`, forward: `BERTH-SF-${id}` };
}

/** Other Docker bridges (the default one, user networks, Berth's egress and setup networks). */
const OTHER_BRIDGES = ['docker0', 'br-+', 'bq+', 'bs+'];

function validate(spec: SetupNetworkFirewallSpec): void {
  if (!/^[0-9a-f]{12}$/.test(spec.networkId))
    throw new BerthError('invalid_input', 'invalid network id', { networkId: spec.networkId });
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(spec.bridge))
    throw new BerthError('invalid_input', 'not a network interface name', { bridge: spec.bridge });
  for (const range of spec.allow) parseCidr(range);
  for (const resolver of spec.resolvers) {
    if (parseIpAddress(resolver) === undefined)
      throw new BerthError('invalid_input', `not an IP address: ${resolver}`, { resolver });
  }
}

/** An allowance naming one address: `a.b.c.d`, `a.b.c.d/32`, an IPv6 address or `…/128`. */
function isSingleAddress(range: string): boolean {
  const cidr = parseCidr(range);
  return cidr.prefix === (cidr.family === 4 ? 32 : 128);
}

function familyOf(text: string): 4 | 6 {
  return text.includes(':') ? 6 : 4;
}

/** The rules for one setup network, as plain values (what `install` puts in place). */
export function setupFirewallPlan(spec: SetupNetworkFirewallSpec): SetupFirewallPlan {
  validate(spec);
  const names = setupChainNames(spec.networkId);
  const comment = ['-m', 'comment', '--comment', setupRuleComment(spec.networkId)];
  const chains: SetupFirewallPlan['chains'] = [];
  for (const tool of ['iptables', 'ip6tables'] as const) {
    const family = tool === 'iptables' ? 4 : 6;
    const allow = spec.allow.filter((range) => familyOf(range) === family);
    const resolvers = spec.resolvers.filter((address) => familyOf(address) === family);
    const refused = REFUSED_ADDRESS_RANGES.map(([range]) => range).filter(
      (range) => familyOf(range) === family,
    );
    // One address named exactly opens that address, the host's own included; a wider range never
    // opens the host, nor another Docker bridge (its gateways are the host's, its containers
    // other sandboxes and the egress proxies' networks), even where it overlaps Docker's pools.
    const exact = allow.filter(isSingleAddress);
    const ranges = allow.filter((range) => !isSingleAddress(range));
    chains.push({
      tool,
      chain: names.input,
      rules: [...exact.map((range) => ['-d', range, '-j', 'ACCEPT']), ['-j', 'DROP']],
    });
    chains.push({
      tool,
      chain: names.forward,
      rules: [
        ...exact.map((range) => ['-d', range, '-j', 'RETURN']),
        ...resolvers.flatMap((address) =>
          ['udp', 'tcp'].map((protocol) => [
            '-d',
            address,
            '-p',
            protocol,
            '--dport',
            '53',
            '-j',
            'RETURN',
          ]),
        ),
        ...OTHER_BRIDGES.map((bridge) => ['-o', bridge, '-j', 'DROP']),
        ...ranges.map((range) => ['-d', range, '-j', 'RETURN']),
        ...refused.map((range) => ['-d', range, '-j', 'DROP']),
        ...(family === 6 ? [['!', '-d', GLOBAL_UNICAST_V6_TEXT, '-j', 'DROP']] : []),
        ['-j', 'RETURN'],
      ],
    });
  }
  const jump = (tool: Tool, chain: HeadRule['chain'], target: string): HeadRule => ({
    tool,
    chain,
    spec: ['-i', spec.bridge, ...comment, '-j', target],
  });
  return {
    inputChain: names.input,
    forwardChain: names.forward,
    chains,
    headRules: [
      jump('iptables', 'INPUT', names.input),
      jump('iptables', 'DOCKER-USER', names.forward),
      jump('iptables', 'FORWARD', names.forward),
      jump('ip6tables', 'INPUT', names.input),
      jump('ip6tables', 'FORWARD', names.forward),
    ],
  };
}

export interface SetupFirewallInstallReport {
  /** The IPv6 rules were skipped: ip6tables is missing or cannot work on this host. */
  ipv6Skipped: boolean;
}

export interface SetupNetworkFirewall {
  install(
    spec: SetupNetworkFirewallSpec,
    signal?: AbortSignal,
  ): Promise<SetupFirewallInstallReport>;
  /** Removes the rules of the network (`allow` and `resolvers` do not matter here). */
  remove(spec: Pick<SetupNetworkFirewallSpec, 'networkId' | 'bridge'>): Promise<void>;
}

/** What ip6tables says where it cannot work on this host (no kernel support, no module). */
const IPV6_UNAVAILABLE = /can't initialize|Protocol not supported|Address family not supported/i;

export class IptablesSetupFirewall implements SetupNetworkFirewall {
  private readonly run: CommandRunner;
  private readonly requireIpv6: boolean;

  constructor(options: { runner?: CommandRunner; requireIpv6?: boolean } = {}) {
    this.run = options.runner ?? execFileRunner;
    this.requireIpv6 = options.requireIpv6 ?? false;
  }

  async install(
    spec: SetupNetworkFirewallSpec,
    signal?: AbortSignal,
  ): Promise<SetupFirewallInstallReport> {
    const plan = setupFirewallPlan(spec);
    let ipv6Skipped = false;
    // The chains first, each tool's in one iptables-restore (a chain line creates or flushes it),
    // then the jumps into them.
    for (const tool of ['iptables', 'ip6tables'] as const) {
      const chains = plan.chains.filter((c) => c.tool === tool);
      const text = [
        '*filter',
        ...chains.map((c) => `:${c.chain} - [0:0]`),
        ...chains.flatMap((c) => c.rules.map((rule) => `-A ${c.chain} ${rule.join(' ')}`)),
        'COMMIT',
        '',
      ].join('\n');
      const restored = await this.runCommand(
        tool,
        [`${tool}-restore`, '-w', '--noflush'],
        signal,
        text,
      );
      if (restored === 'unavailable') {
        ipv6Skipped = true;
        continue;
      }
      if (restored.exitCode !== 0) this.fail(`${tool}-restore of the chains`, restored);
    }
    for (const rule of plan.headRules) {
      if (rule.tool === 'ip6tables' && ipv6Skipped) continue;
      signal?.throwIfAborted();
      const exists = await this.runTool(rule.tool, ['-C', rule.chain, ...rule.spec], signal);
      if (exists === 'unavailable') {
        ipv6Skipped = true;
        continue;
      }
      if (exists.exitCode === 0) continue;
      if (rule.chain === 'DOCKER-USER' && /No chain|does not exist/i.test(exists.stderr)) {
        throw new BerthError(
          'runtime_unavailable',
          'the DOCKER-USER chain is missing: is Docker running with iptables enabled?',
        );
      }
      await this.must(rule.tool, ['-I', rule.chain, '1', ...rule.spec], signal);
    }
    return { ipv6Skipped };
  }

  async remove(spec: Pick<SetupNetworkFirewallSpec, 'networkId' | 'bridge'>): Promise<void> {
    const plan = setupFirewallPlan({ ...spec, allow: [], resolvers: [] });
    // Each jump deleted until there is none left (a delete of a missing rule fails).
    for (const rule of plan.headRules) {
      for (let i = 0; i < 16; i++) {
        const deleted = await this.runTool(rule.tool, ['-D', rule.chain, ...rule.spec]);
        if (deleted === 'unavailable' || deleted.exitCode !== 0) break;
      }
    }
    for (const tool of ['iptables', 'ip6tables'] as const) {
      const chains = plan.chains.filter((c) => c.tool === tool).map((c) => c.chain);
      const text = ['*filter', ...chains.flatMap((c) => [`-F ${c}`, `-X ${c}`]), 'COMMIT', ''];
      const removed = await this.runCommand(
        tool,
        [`${tool}-restore`, '-w', '--noflush'],
        undefined,
        text.join('\n'),
      );
      if (removed === 'unavailable' || removed.exitCode === 0) continue;
      // A chain was missing (a partial install): one by one, whatever is there.
      for (const chain of chains) {
        const flushed = await this.runTool(tool, ['-F', chain]);
        if (flushed !== 'unavailable' && flushed.exitCode === 0)
          await this.must(tool, ['-X', chain]);
      }
    }
  }

  /** Whether the chains and jumps of the network are in place (IPv4; for checks and tests). */
  async isInstalled(
    spec: Pick<SetupNetworkFirewallSpec, 'networkId' | 'bridge'>,
  ): Promise<boolean> {
    const plan = setupFirewallPlan({ ...spec, allow: [], resolvers: [] });
    for (const rule of plan.headRules.filter((r) => r.tool === 'iptables')) {
      const exists = await this.runTool(rule.tool, ['-C', rule.chain, ...rule.spec]);
      if (exists === 'unavailable' || exists.exitCode !== 0) return false;
    }
    return true;
  }

  /** Runs `tool -w -t filter ARGS`; 'unavailable' when ip6tables cannot work here (and may be skipped). */
  private runTool(
    tool: Tool,
    args: string[],
    signal?: AbortSignal,
  ): Promise<CommandResult | 'unavailable'> {
    return this.runCommand(tool, [tool, '-w', '-t', 'filter', ...args], signal);
  }

  private async runCommand(
    tool: Tool,
    argv: string[],
    signal?: AbortSignal,
    input?: string,
  ): Promise<CommandResult | 'unavailable'> {
    const optional = tool === 'ip6tables' && !this.requireIpv6;
    let result: CommandResult;
    try {
      result = await this.run(argv, signal, input);
    } catch (error) {
      if (optional) return 'unavailable';
      throw error;
    }
    if (optional && result.exitCode !== 0 && IPV6_UNAVAILABLE.test(result.stderr))
      return 'unavailable';
    return result;
  }

  private async must(tool: Tool, args: string[], signal?: AbortSignal): Promise<void> {
    const result = await this.runTool(tool, args, signal);
    if (result === 'unavailable') return;
    if (result.exitCode !== 0) this.fail(`${tool} ${args.join(' ')}`, result);
  }

  private fail(what: string, result: CommandResult): never {
    throw new BerthError(
      'runtime_unavailable',
      `setup network firewall: ${what} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
    );
  }
}
