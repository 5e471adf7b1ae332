import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  IptablesFirewall,
  type SandboxNetworkFirewallSpec,
} from '../../src/adapters/firewall/iptables-firewall.js';
import { IptablesSetupFirewall } from '../../src/adapters/firewall/setup-network-firewall.js';
import { setupBridgeName } from '../../src/egress/setup-network-guard.js';
import {
  egressBridgeName,
  sweepStaleEgressRules,
  sweepStaleSetupRules,
} from '../../src/egress/sweep-stale-egress-rules.js';

/**
 * Rules of egress networks whose bridge is gone (an orchestrator killed mid-attempt) are swept;
 * rules whose bridge exists are kept. Real iptables (needs root); no container, no packet.
 * The "live" bridge is simulated by the `bridgeExists` seam, the stale one has no interface.
 */

const firewall = new IptablesFirewall();
const spec = (id: string): SandboxNetworkFirewallSpec => ({
  networkId: id,
  bridge: egressBridgeName(id),
  subnet: '10.250.0.0/24',
  proxyAddress: '10.250.0.1',
  proxyPort: 3128,
});
const stale = spec(randomBytes(6).toString('hex'));
const live = spec(randomBytes(6).toString('hex'));
const rules = () => execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8' });

const setupFirewall = new IptablesSetupFirewall();
const setupSpec = (id: string) => ({
  networkId: id,
  bridge: setupBridgeName(id),
  allow: ['198.18.0.77/32'],
  resolvers: ['10.255.255.53'],
});
const staleSetup = setupSpec(randomBytes(6).toString('hex'));
const liveSetup = setupSpec(randomBytes(6).toString('hex'));

afterAll(async () => {
  await firewall.remove(stale);
  await firewall.remove(live);
  await setupFirewall.remove(staleSetup);
  await setupFirewall.remove(liveSetup);
});

describe('sweeping stale egress firewall rules (root)', () => {
  it('removes the rules of a bridge that no longer exists and keeps the others', async () => {
    await firewall.install(stale);
    await firewall.install(live);
    expect(rules()).toContain(stale.bridge);
    const swept = await sweepStaleEgressRules({
      // Real interfaces count too: a concurrently running attempt's rules must survive this test.
      bridgeExists: (bridge) => bridge === live.bridge || existsSync(`/sys/class/net/${bridge}`),
    });
    expect(swept).toContain(stale.bridge);
    expect(swept).not.toContain(live.bridge);
    const after = rules();
    expect(after).not.toContain(stale.bridge);
    expect(after).not.toContain(`BERTH-${stale.networkId.toUpperCase()}`);
    expect(after).toContain(live.bridge);
    expect(await firewall.isInstalled(live)).toBe(true);
  });

  it('does the same for setup networks, in IPv4 and IPv6 (whose install is idempotent)', async () => {
    await setupFirewall.install(staleSetup);
    await setupFirewall.install(liveSetup);
    // Installing again changes nothing: one jump from each of INPUT, DOCKER-USER and FORWARD.
    await setupFirewall.install(liveSetup);
    const jumps = rules()
      .split('\n')
      .filter((line) => line.includes(`berth-setup:${liveSetup.networkId}`));
    expect(jumps).toHaveLength(3);
    expect(rules()).toContain(`berth-setup:${staleSetup.networkId}`);
    const swept = await sweepStaleSetupRules({
      bridgeExists: (bridge) =>
        bridge === liveSetup.bridge || existsSync(`/sys/class/net/${bridge}`),
    });
    expect(swept).toContain(staleSetup.bridge);
    expect(swept).not.toContain(liveSetup.bridge);
    for (const tool of ['iptables', 'ip6tables']) {
      const after = execFileSync(tool, ['-w', '-S'], { encoding: 'utf8' });
      expect(after).not.toContain(`berth-setup:${staleSetup.networkId}`);
      expect(after).not.toContain(`BERTH-SF-${staleSetup.networkId.toUpperCase()}`);
    }
    expect(await setupFirewall.isInstalled(liveSetup)).toBe(true);
  });
});
