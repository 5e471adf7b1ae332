import { describe, expect, it } from 'vitest';
import {
  IptablesSetupFirewall,
  setupFirewallPlan,
} from '../../src/adapters/firewall/setup-network-firewall.js';
import type { CommandRunner } from '../../src/adapters/firewall/iptables-firewall.js';
import { REFUSED_ADDRESS_RANGES } from '../../src/egress/address-guard.js';
import {
  daemonResolversIn,
  resolversIn,
  SetupNetworkGuard,
} from '../../src/egress/setup-network-guard.js';
import { sweepStaleSetupRules } from '../../src/egress/sweep-stale-egress-rules.js';
import { loadConfig } from '../../src/config/config.js';

const spec = {
  networkId: '0123456789ab',
  bridge: 'bs0123456789ab',
  allow: ['198.18.0.77/32', 'fd00:1::/64', '172.16.0.0/12', 'fd00:2::5'],
  resolvers: ['10.255.255.53'],
};

describe('the setup network firewall plan', () => {
  const plan = setupFirewallPlan(spec);
  const chain = (tool: string, name: string) =>
    plan.chains.find((c) => c.tool === tool && c.chain === name)?.rules ?? [];

  it('drops everything to the host itself except an address an allowance names exactly, in IPv4 and IPv6', () => {
    // 172.16.0.0/12 and fd00:1::/64 cover host addresses (bridge gateways): they do not open them.
    expect(chain('iptables', plan.inputChain)).toEqual([
      ['-d', '198.18.0.77/32', '-j', 'ACCEPT'],
      ['-j', 'DROP'],
    ]);
    expect(chain('ip6tables', plan.inputChain)).toEqual([
      ['-d', 'fd00:2::5', '-j', 'ACCEPT'],
      ['-j', 'DROP'],
    ]);
  });

  it('forwards only to public addresses: exact allowances and DNS first, other bridges dropped before a wider allowance, every refused range dropped', () => {
    const v4 = chain('iptables', plan.forwardChain);
    expect(v4.slice(0, 3)).toEqual([
      ['-d', '198.18.0.77/32', '-j', 'RETURN'],
      ['-d', '10.255.255.53', '-p', 'udp', '--dport', '53', '-j', 'RETURN'],
      ['-d', '10.255.255.53', '-p', 'tcp', '--dport', '53', '-j', 'RETURN'],
    ]);
    for (const bridge of ['docker0', 'br-+', 'bq+', 'bs+'])
      expect(v4).toContainEqual(['-o', bridge, '-j', 'DROP']);
    // A range overlapping Docker's pools comes after the drop of every other bridge.
    const wide = v4.findIndex((rule) => rule.join(' ') === '-d 172.16.0.0/12 -j RETURN');
    const lastBridge = v4.findIndex((rule) => rule.join(' ') === '-o bs+ -j DROP');
    expect(wide).toBeGreaterThan(lastBridge);
    expect(v4.findIndex((rule) => rule.join(' ') === '-d 172.16.0.0/12 -j DROP')).toBeGreaterThan(
      wide,
    );
    expect(v4).toContainEqual(['-d', '168.63.129.16/32', '-j', 'DROP']);
    for (const range of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8']) {
      expect(v4).toContainEqual(['-d', range, '-j', 'DROP']);
    }
    for (const range of ['169.254.0.0/16', '100.64.0.0/10', '192.0.2.0/24', '203.0.113.0/24'])
      expect(v4).toContainEqual(['-d', range, '-j', 'DROP']);
    // Every IPv4 range the address guard refuses, and the public rest returns to Docker's rules.
    for (const [range] of REFUSED_ADDRESS_RANGES.filter(([r]) => !r.includes(':')))
      expect(v4).toContainEqual(['-d', range, '-j', 'DROP']);
    expect(v4.at(-1)).toEqual(['-j', 'RETURN']);
    const v6 = chain('ip6tables', plan.forwardChain);
    expect(v6[0]).toEqual(['-d', 'fd00:2::5', '-j', 'RETURN']);
    expect(v6).toContainEqual(['-d', 'fd00:1::/64', '-j', 'RETURN']);
    for (const range of ['::1/128', 'fc00::/7', 'fe80::/10', '::ffff:0:0/96'])
      expect(v6).toContainEqual(['-d', range, '-j', 'DROP']);
    expect(v6).toContainEqual(['!', '-d', '2000::/3', '-j', 'DROP']);
    expect(v6.at(-1)).toEqual(['-j', 'RETURN']);
  });

  it('jumps from INPUT, DOCKER-USER and FORWARD on the bridge only, with the network in the comment', () => {
    expect(plan.headRules.map((r) => `${r.tool} ${r.chain} ${r.spec.join(' ')}`)).toEqual([
      'iptables INPUT -i bs0123456789ab -m comment --comment berth-setup:0123456789ab -j BERTH-SI-0123456789AB',
      'iptables DOCKER-USER -i bs0123456789ab -m comment --comment berth-setup:0123456789ab -j BERTH-SF-0123456789AB',
      'iptables FORWARD -i bs0123456789ab -m comment --comment berth-setup:0123456789ab -j BERTH-SF-0123456789AB',
      'ip6tables INPUT -i bs0123456789ab -m comment --comment berth-setup:0123456789ab -j BERTH-SI-0123456789AB',
      'ip6tables FORWARD -i bs0123456789ab -m comment --comment berth-setup:0123456789ab -j BERTH-SF-0123456789AB',
    ]);
  });

  it('refuses what is not a range, an address or an interface name', () => {
    expect(() => setupFirewallPlan({ ...spec, allow: ['10.0.0.0/33'] })).toThrow(/address range/);
    expect(() => setupFirewallPlan({ ...spec, resolvers: ['dns.example'] })).toThrow(/IP address/);
    expect(() => setupFirewallPlan({ ...spec, bridge: 'bs0; rm -rf /' })).toThrow(/interface/);
    expect(() => setupFirewallPlan({ ...spec, networkId: 'XYZ' })).toThrow(/network id/);
  });

  it('skips the IPv6 rules where ip6tables cannot work, and says so', async () => {
    const ran: string[] = [];
    const runner: CommandRunner = (argv) => {
      ran.push(argv.join(' '));
      if (argv[0] === 'ip6tables')
        return Promise.resolve({
          exitCode: 3,
          stdout: '',
          stderr: "can't initialize ip6tables table `filter'",
        });
      // -C: not there yet; everything else works.
      return Promise.resolve({ exitCode: argv.includes('-C') ? 1 : 0, stdout: '', stderr: '' });
    };
    const report = await new IptablesSetupFirewall({ runner }).install(spec);
    expect(report.ipv6Skipped).toBe(true);
    expect(ran).toContain(
      'iptables -w -t filter -I INPUT 1 -i bs0123456789ab -m comment --comment berth-setup:0123456789ab -j BERTH-SI-0123456789AB',
    );
    await expect(
      new IptablesSetupFirewall({ runner, requireIpv6: true }).install(spec),
    ).rejects.toThrow(/ip6tables/);
  });
});

describe('the setup network around it', () => {
  it('keeps port 53 open only to non-loopback resolvers of resolv.conf', () => {
    expect(
      resolversIn(
        '# x\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\nnameserver fe80::1%eth0\nsearch x\n',
      ),
    ).toEqual(['10.255.255.53', 'fe80::1']);
    // A daemon with its own DNS servers forwards to those.
    expect(daemonResolversIn('{"dns": ["10.0.0.2", "127.0.0.1"], "iptables": true}')).toEqual([
      '10.0.0.2',
    ]);
    expect(daemonResolversIn('{"iptables": true}')).toEqual([]);
    expect(daemonResolversIn('not json')).toEqual([]);
  });

  it('reads BERTH_SETUP_ALLOW apart from BERTH_EGRESS_ALLOW', () => {
    const config = loadConfig(
      {},
      { BERTH_SETUP_ALLOW: '203.0.113.80/32, fd00::/64', BERTH_EGRESS_ALLOW: '10.1.0.0/16' },
    );
    expect(config.setupAllow).toEqual(['203.0.113.80/32', 'fd00::/64']);
    expect(config.egressAllow).toEqual(['10.1.0.0/16']);
    expect(loadConfig({}, {}).setupAllow).toEqual([]);
    expect(() => loadConfig({}, { BERTH_SETUP_ALLOW: 'mirror.example' })).toThrow(/setupAllow/);
  });

  it('sweeps the rules of setup networks whose bridge is gone, and only those', async () => {
    const listing = [
      '-P INPUT ACCEPT',
      '-A INPUT -i bs0123456789ab -m comment --comment berth-setup:0123456789ab -j BERTH-SI-0123456789AB',
      '-A INPUT -i bsaaaaaaaaaaaa -m comment --comment berth-setup:aaaaaaaaaaaa -j BERTH-SI-AAAAAAAAAAAA',
      '-A INPUT -i bsbbbbbbbbbbbb -m comment --comment berth-setup:cccccccccccc -j BERTH-SI-BBBBBBBBBBBB',
    ].join('\n');
    const removed: string[] = [];
    const swept = await sweepStaleSetupRules({
      runner: () => Promise.resolve({ exitCode: 0, stdout: listing, stderr: '' }),
      firewall: { remove: (s) => (removed.push(s.bridge), Promise.resolve()) },
      bridgeExists: (bridge) => bridge === 'bsaaaaaaaaaaaa',
    });
    expect(swept).toEqual(['bs0123456789ab']);
    expect(removed).toEqual(['bs0123456789ab']);
  });
});

describe('the setup network guard', () => {
  it('keeps the rules of a network that could not be removed, and sweeps again at the next setup network', async () => {
    const removed: string[] = [];
    let sweeps = 0;
    const guard = new SetupNetworkGuard({
      firewall: {
        install: () => Promise.resolve({ ipv6Skipped: false }),
        remove: (s) => (removed.push(s.bridge), Promise.resolve()),
      },
      resolvers: () => [],
      sweep: () => (sweeps++, Promise.resolve([])),
    });
    await guard.protect('att_one');
    await guard.protect('att_two');
    expect(sweeps).toBe(1);
    guard.releaseWhenGone('att_one');
    // Not removed now, nor by a later release: the sweep removes them once the bridge is gone.
    await guard.release('att_one');
    expect(removed).toEqual([]);
    await guard.protect('att_three');
    expect(sweeps).toBe(2);
    await guard.release('att_two');
    expect(removed).toEqual([guard.bridgeFor('att_two')]);
  });
});
