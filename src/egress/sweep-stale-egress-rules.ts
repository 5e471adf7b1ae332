import { existsSync } from 'node:fs';
import {
  execFileRunner,
  IptablesFirewall,
  type CommandRunner,
} from '../adapters/firewall/iptables-firewall.js';
import {
  IptablesSetupFirewall,
  type SetupNetworkFirewall,
} from '../adapters/firewall/setup-network-firewall.js';
import type { SandboxNetworkFirewall } from './egress-enforcer.js';

/** The bridge interface of an attempt's egress network: `bq` + the network id (12 hex). */
export function egressBridgeName(networkId: string): string {
  return `bq${networkId}`;
}

/**
 * The INPUT jumps of Berth's rules (`pattern`: groups bridge, id, the comment's id, …, the chain
 * last) whose comment and chain agree with the id and whose bridge no longer exists.
 */
async function staleJumps(
  pattern: RegExp,
  run: CommandRunner,
  options: { bridgeExists?: (bridge: string) => boolean; signal?: AbortSignal },
): Promise<RegExpExecArray[]> {
  const exists =
    options.bridgeExists ?? ((bridge: string) => existsSync(`/sys/class/net/${bridge}`));
  const listed = await run(['iptables', '-w', '-t', 'filter', '-S', 'INPUT'], options.signal);
  if (listed.exitCode !== 0) return [];
  const stale: RegExpExecArray[] = [];
  for (const line of listed.stdout.split('\n')) {
    const match = pattern.exec(line.trim());
    if (match === null) continue;
    const [, bridge = '', id = '', commentId = ''] = match;
    const chain = match[match.length - 1] ?? '';
    if (commentId !== id || chain !== id.toUpperCase() || exists(bridge)) continue;
    stale.push(match);
  }
  return stale;
}

const INPUT_JUMP =
  /^-A INPUT -i (bq([0-9a-f]{12})) -m comment --comment "?berth:([0-9a-f]{12}):([0-9.]+\/[0-9]+)"? -j BERTH-([0-9A-F]{12})\s*$/;

export interface SweepOptions {
  firewall?: SandboxNetworkFirewall;
  runner?: CommandRunner;
  /** Whether a network interface exists (default: /sys/class/net). */
  bridgeExists?: (bridge: string) => boolean;
  signal?: AbortSignal;
}

/**
 * Removes the firewall rules of egress networks whose bridge is gone: what an orchestrator that
 * was killed mid-attempt left behind (the reaper removes the network; the rules stay). Only
 * rules of egress networks (`bq<id>` bridges) are touched, and only when their bridge no longer
 * exists, so a live attempt of any orchestrator on this host keeps its rules. Returns the bridges
 * swept.
 */
export async function sweepStaleEgressRules(options: SweepOptions = {}): Promise<string[]> {
  const run = options.runner ?? execFileRunner;
  const firewall = options.firewall ?? new IptablesFirewall({ runner: run });
  const swept: string[] = [];
  for (const match of await staleJumps(INPUT_JUMP, run, options)) {
    const [, bridge = '', id = '', , subnet = ''] = match;
    // The proxy's address and port only appear in the chain, which `remove` flushes whole.
    await firewall.remove(
      { networkId: id, bridge, subnet, proxyAddress: '127.0.0.1', proxyPort: 1 },
      options.signal,
    );
    swept.push(bridge);
  }
  return swept;
}

const SETUP_INPUT_JUMP =
  /^-A INPUT -i (bs([0-9a-f]{12})) -m comment --comment "?berth-setup:([0-9a-f]{12})"? -j BERTH-SI-([0-9A-F]{12})\s*$/;

export interface SetupSweepOptions {
  firewall?: Pick<SetupNetworkFirewall, 'remove'>;
  runner?: CommandRunner;
  /** Whether a network interface exists (default: /sys/class/net). */
  bridgeExists?: (bridge: string) => boolean;
  signal?: AbortSignal;
}

/**
 * The same for setup networks (`bs<id>` bridges, see setup-network-guard.ts): the rules of a
 * setup network whose bridge is gone are removed. Returns the bridges swept.
 */
export async function sweepStaleSetupRules(options: SetupSweepOptions = {}): Promise<string[]> {
  const run = options.runner ?? execFileRunner;
  const firewall = options.firewall ?? new IptablesSetupFirewall({ runner: run });
  const swept: string[] = [];
  for (const match of await staleJumps(SETUP_INPUT_JUMP, run, options)) {
    const [, bridge = '', id = ''] = match;
    await firewall.remove({ networkId: id, bridge });
    swept.push(bridge);
  }
  return swept;
}
