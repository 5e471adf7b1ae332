import { describe, expect, it } from 'vitest';
import {
  firewallPlan,
  IptablesFirewall,
  type CommandRunner,
} from '../../src/adapters/firewall/iptables-firewall.js';

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

describe('IptablesFirewall.install', () => {
  /** A host whose iptables accepts everything (no rule present yet); ip6tables as `ip6` says. */
  const host =
    (ip6: 'works' | 'missing' | 'broken'): CommandRunner =>
    (argv) => {
      if (argv[0] === 'ip6tables') {
        if (ip6 === 'missing') return Promise.reject(new Error('spawn ip6tables ENOENT'));
        if (ip6 === 'broken')
          return Promise.resolve({
            exitCode: 3,
            stdout: '',
            stderr: "ip6tables v1.8.9: can't initialize ip6tables table `filter'",
          });
      }
      // `-C` (check): not there yet; everything else succeeds.
      return Promise.resolve({ exitCode: argv.includes('-C') ? 1 : 0, stdout: '', stderr: '' });
    };

  it('reports the IPv6 rules as skipped when ip6tables is missing or cannot work', async () => {
    expect(await new IptablesFirewall({ runner: host('works') }).install(spec)).toEqual({
      ipv6Skipped: false,
    });
    expect(await new IptablesFirewall({ runner: host('missing') }).install(spec)).toEqual({
      ipv6Skipped: true,
    });
    expect(await new IptablesFirewall({ runner: host('broken') }).install(spec)).toEqual({
      ipv6Skipped: true,
    });
  });

  it('fails instead when IPv6 rules are required', async () => {
    await expect(
      new IptablesFirewall({ runner: host('missing'), requireIpv6: true }).install(spec),
    ).rejects.toThrow('ENOENT');
  });
});
