import { describe, expect, it } from 'vitest';
import { firewallPlan } from '../../src/adapters/firewall/iptables-firewall.js';

const spec = {
  networkId: 'a1b2c3d4',
  bridge: 'br-a1b2c3d4',
  subnet: '172.30.5.0/24',
  proxyAddress: '172.30.5.1',
  proxyPort: 3128,
};

describe('firewallPlan', () => {
  it('accepts only TCP to the proxy port from the bridge, drops the rest, forwards nothing', () => {
    const plan = firewallPlan(spec);
    expect(plan.chain).toBe('BERTH-A1B2C3D4');
    expect(plan.chainRules).toEqual([
      ['-p', 'tcp', '-d', '172.30.5.1', '--dport', '3128', '-j', 'ACCEPT'],
      ['-j', 'DROP'],
    ]);
    const heads = plan.headRules.map(
      (r) => `${r.tool} ${r.chain} ${r.spec.filter((a) => !a.startsWith('berth:')).join(' ')}`,
    );
    expect(heads).toEqual([
      'iptables INPUT -i br-a1b2c3d4 -m comment --comment -j BERTH-A1B2C3D4',
      'iptables DOCKER-USER -i br-a1b2c3d4 -m comment --comment -j DROP',
      'iptables DOCKER-USER -o br-a1b2c3d4 -m comment --comment -j DROP',
      'iptables FORWARD -i br-a1b2c3d4 -m comment --comment -j DROP',
      'ip6tables INPUT -i br-a1b2c3d4 -m comment --comment -j DROP',
      'ip6tables FORWARD -i br-a1b2c3d4 -m comment --comment -j DROP',
      'ip6tables FORWARD -o br-a1b2c3d4 -m comment --comment -j DROP',
    ]);
  });

  it.each([
    [{ bridge: 'br0; rm -rf /' }, 'interface'],
    [{ bridge: '-j ACCEPT' }, 'interface'],
    [{ bridge: 'averyveryverylongname' }, 'interface'],
    [{ subnet: '172.30.5.0' }, 'subnet'],
    [{ subnet: '172.30.5.0/33' }, 'subnet'],
    [{ proxyAddress: '0.0.0.0/0' }, 'proxyAddress'],
    [{ proxyPort: 0 }, 'proxyPort'],
    [{ networkId: 'x y' }, 'network id'],
  ])('refuses %o', (patch, message) => {
    expect(() => firewallPlan({ ...spec, ...patch })).toThrow(message);
  });
});
