import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  IptablesFirewall,
  type SandboxNetworkFirewallSpec,
} from '../../src/adapters/firewall/iptables-firewall.js';
import {
  egressBridgeName,
  sweepStaleEgressRules,
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

afterAll(async () => {
  await firewall.remove(stale);
  await firewall.remove(live);
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
});
