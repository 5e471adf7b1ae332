/**
 * Threat model. In the agent phase a sandbox sits on its own Docker network (created
 * `--internal`, so Docker gives it no route out) and may run hostile code as root inside its
 * container. It can send anything from its interface: to the host's address on the bridge (the
 * Berth API, the Docker API port, SSH, the host's DNS resolver, any local service), to other
 * containers, to any address it likes hoping the host forwards it, with any source address.
 *
 * Trusted: the host's netfilter, Docker's bridge for this network (its interface name and
 * subnet), the proxy's address and port given by the orchestrator.
 *
 * Guarantees, keyed on the bridge interface (not on source addresses, so spoofing does not help):
 * - INPUT: from the bridge, only TCP to the proxy's address and port is accepted; everything
 *   else that reaches the host itself from this network is dropped (other ports, ICMP, UDP/DNS),
 *   answers included: a connection the host opens into the sandbox (another attempt's proxy
 *   dialling it under an operator allowance that covers Docker's pools) gets no SYN-ACK back.
 * - FORWARD (through DOCKER-USER, which Docker evaluates first): nothing is forwarded from or to
 *   the bridge, so no other network, no other sandbox, no outside address, even if a route or
 *   NAT rule elsewhere would allow it.
 * - IPv6: everything from or to the bridge is dropped in INPUT and FORWARD. Where the host has no
 *   usable ip6tables (and `requireIpv6` is off) those rules are skipped and `install` says so
 *   (`ipv6Skipped`); the lockdown writes a warning into the attempt's log. What remains then is
 *   that the network is made without IPv6 and the sandbox has no IPv6 address.
 * Installing is idempotent (a per-network chain is flushed and refilled; jump rules are added
 * only when missing) and removal deletes exactly what install added.
 * Docker's embedded DNS forwards from the container's namespace, so a resolver on the host's
 * bridge address is dropped like any other port (tested); loopback inside the container (its own
 * services) is not this module's concern.
 */
import { execFile } from 'node:child_process';
import { BerthError } from '../../errors/berth-error.js';

export interface SandboxNetworkFirewallSpec {
  /** A short id of the sandbox network (used to name the chain and comment the rules). */
  networkId: string;
  /** The bridge interface of the network (`br-…`). */
  bridge: string;
  /** The IPv4 subnet of the network, for the record in rule comments and checks. */
  subnet: string;
  /** The host address the proxy listens on, reachable from the network (usually its gateway). */
  proxyAddress: string;
  proxyPort: number;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; `input`, when given, is written to its stdin. */
export type CommandRunner = (
  argv: readonly string[],
  signal?: AbortSignal,
  input?: string,
) => Promise<CommandResult>;

export const execFileRunner: CommandRunner = (argv, signal, input) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) {
      reject(new BerthError('internal', 'empty command'));
      return;
    }
    const child = execFile(file, args, { signal, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(
          new BerthError(
            'runtime_unavailable',
            `${file} could not run: ${error.message}`,
            {},
            { cause: error },
          ),
        );
        return;
      }
      resolve({ exitCode: error ? Number(error.code) : 0, stdout, stderr });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });

type Tool = 'iptables' | 'ip6tables';

interface Rule {
  tool: Tool;
  table: 'filter';
  chain: string;
  spec: string[];
}

export interface FirewallPlan {
  /** The per-network chain for INPUT (IPv4). */
  chain: string;
  /** Rules in the per-network chain, in order. */
  chainRules: string[][];
  /** Jump/drop rules placed at the head of built-in or Docker chains. */
  headRules: Rule[];
}

function validate(spec: SandboxNetworkFirewallSpec): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(spec.bridge)) {
    throw new BerthError('invalid_input', 'not a network interface name', { bridge: spec.bridge });
  }
  if (!/^[a-z0-9]{4,64}$/i.test(spec.networkId))
    throw new BerthError('invalid_input', 'invalid network id', { networkId: spec.networkId });
  const ipv4 = /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$/;
  const [subnetAddress, prefix] = spec.subnet.split('/');
  if (!ipv4.test(subnetAddress ?? '') || !/^([0-9]|[12][0-9]|3[0-2])$/.test(prefix ?? '')) {
    throw new BerthError('invalid_input', 'subnet must be an IPv4 CIDR', { subnet: spec.subnet });
  }
  if (!ipv4.test(spec.proxyAddress))
    throw new BerthError('invalid_input', 'proxyAddress must be an IPv4 address', {
      proxyAddress: spec.proxyAddress,
    });
  if (!Number.isInteger(spec.proxyPort) || spec.proxyPort < 1 || spec.proxyPort > 65535) {
    throw new BerthError('invalid_input', 'proxyPort must be a TCP port', {
      proxyPort: spec.proxyPort,
    });
  }
}

/** The rules for one sandbox network, as plain values (what `install` puts in place). */
export function firewallPlan(spec: SandboxNetworkFirewallSpec): FirewallPlan {
  validate(spec);
  const chain = `BERTH-${spec.networkId.slice(0, 12).toUpperCase()}`;
  const comment = [
    '-m',
    'comment',
    '--comment',
    `berth:${spec.networkId.slice(0, 12)}:${spec.subnet}`,
  ];
  return {
    chain,
    chainRules: [
      ['-p', 'tcp', '-d', spec.proxyAddress, '--dport', String(spec.proxyPort), '-j', 'ACCEPT'],
      ['-j', 'DROP'],
    ],
    headRules: [
      {
        tool: 'iptables',
        table: 'filter',
        chain: 'INPUT',
        spec: ['-i', spec.bridge, ...comment, '-j', chain],
      },
      {
        tool: 'iptables',
        table: 'filter',
        chain: 'DOCKER-USER',
        spec: ['-i', spec.bridge, ...comment, '-j', 'DROP'],
      },
      {
        tool: 'iptables',
        table: 'filter',
        chain: 'DOCKER-USER',
        spec: ['-o', spec.bridge, ...comment, '-j', 'DROP'],
      },
      // Belt and braces where Docker's chain is not consulted (for example a forward that bypasses it).
      {
        tool: 'iptables',
        table: 'filter',
        chain: 'FORWARD',
        spec: ['-i', spec.bridge, ...comment, '-j', 'DROP'],
      },
      {
        tool: 'ip6tables',
        table: 'filter',
        chain: 'INPUT',
        spec: ['-i', spec.bridge, ...comment, '-j', 'DROP'],
      },
      {
        tool: 'ip6tables',
        table: 'filter',
        chain: 'FORWARD',
        spec: ['-i', spec.bridge, ...comment, '-j', 'DROP'],
      },
      {
        tool: 'ip6tables',
        table: 'filter',
        chain: 'FORWARD',
        spec: ['-o', spec.bridge, ...comment, '-j', 'DROP'],
      },
    ],
  };
}

/** What `install` did beyond the plan's IPv4 rules. */
export interface FirewallInstallReport {
  /** The IPv6 rules were skipped: ip6tables is missing or cannot work on this host. */
  ipv6Skipped: boolean;
}

export interface IptablesFirewallOptions {
  runner?: CommandRunner;
  /** Whether ip6tables rules are required; when false a missing ip6tables is tolerated. */
  requireIpv6?: boolean;
}

export class IptablesFirewall {
  private readonly run: CommandRunner;
  private readonly requireIpv6: boolean;

  constructor(options: IptablesFirewallOptions = {}) {
    this.run = options.runner ?? execFileRunner;
    this.requireIpv6 = options.requireIpv6 ?? false;
  }

  /** Puts the rules for one sandbox network in place; running it again changes nothing. */
  async install(
    spec: SandboxNetworkFirewallSpec,
    signal?: AbortSignal,
  ): Promise<FirewallInstallReport> {
    const plan = firewallPlan(spec);
    // The chain first (flushed and refilled in order), then the jumps into it.
    const created = await this.run(['iptables', '-w', '-t', 'filter', '-N', plan.chain], signal);
    if (created.exitCode !== 0 && !/exists/i.test(created.stderr))
      this.fail('create chain', created);
    await this.must(['iptables', '-w', '-t', 'filter', '-F', plan.chain], signal);
    for (const rule of plan.chainRules)
      await this.must(['iptables', '-w', '-t', 'filter', '-A', plan.chain, ...rule], signal);
    let ipv6Skipped = false;
    for (const rule of plan.headRules) {
      signal?.throwIfAborted();
      const exists = await this.check(rule, signal);
      if (exists === 'unavailable') {
        ipv6Skipped = true;
        continue;
      }
      if (!exists)
        await this.must(
          [rule.tool, '-w', '-t', rule.table, '-I', rule.chain, '1', ...rule.spec],
          signal,
        );
    }
    return { ipv6Skipped };
  }

  /** Removes what `install` added; safe to call when nothing (or only part) is installed. */
  async remove(spec: SandboxNetworkFirewallSpec, signal?: AbortSignal): Promise<void> {
    const plan = firewallPlan(spec);
    for (const rule of plan.headRules) {
      for (let i = 0; i < 16; i++) {
        const exists = await this.check(rule, signal);
        if (exists !== true) break;
        await this.must(
          [rule.tool, '-w', '-t', rule.table, '-D', rule.chain, ...rule.spec],
          signal,
        );
      }
    }
    const flushed = await this.run(['iptables', '-w', '-t', 'filter', '-F', plan.chain], signal);
    if (flushed.exitCode === 0)
      await this.must(['iptables', '-w', '-t', 'filter', '-X', plan.chain], signal);
  }

  /** Whether every rule of the plan is in place (for health checks and tests). */
  async isInstalled(spec: SandboxNetworkFirewallSpec, signal?: AbortSignal): Promise<boolean> {
    const plan = firewallPlan(spec);
    const listed = await this.run(['iptables', '-w', '-t', 'filter', '-S', plan.chain], signal);
    if (listed.exitCode !== 0) return false;
    for (const rule of plan.headRules) {
      const exists = await this.check(rule, signal);
      if (exists === false) return false;
    }
    return true;
  }

  private async check(rule: Rule, signal?: AbortSignal): Promise<boolean | 'unavailable'> {
    let result: CommandResult;
    try {
      result = await this.run(
        [rule.tool, '-w', '-t', rule.table, '-C', rule.chain, ...rule.spec],
        signal,
      );
    } catch (error) {
      if (rule.tool === 'ip6tables' && !this.requireIpv6) return 'unavailable';
      throw error;
    }
    if (result.exitCode === 0) return true;
    if (
      rule.tool === 'ip6tables' &&
      !this.requireIpv6 &&
      /can't initialize|not found|No chain|does not exist/i.test(result.stderr)
    ) {
      return 'unavailable';
    }
    if (rule.chain === 'DOCKER-USER' && /No chain|does not exist/i.test(result.stderr)) {
      throw new BerthError(
        'runtime_unavailable',
        'the DOCKER-USER chain is missing: is Docker running with iptables enabled?',
      );
    }
    return false;
  }

  private async must(argv: string[], signal?: AbortSignal): Promise<void> {
    const result = await this.run(argv, signal);
    if (result.exitCode !== 0) this.fail(argv.join(' '), result);
  }

  private fail(what: string, result: CommandResult): never {
    throw new BerthError(
      'runtime_unavailable',
      `firewall: ${what} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
    );
  }
}
