import { describe, expect, it } from 'vitest';
import { AddressGuard, parseIpAddress } from '../../src/egress/address-guard.js';

const REFUSED: Array<[string, string]> = [
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.1', 'private'],
  ['169.254.169.254', 'metadata'],
  ['168.63.129.16', 'Azure WireServer'],
  ['100.100.100.200', 'metadata'],
  ['169.254.1.1', 'link-local'],
  ['100.64.0.1', 'carrier-grade NAT'],
  ['100.127.255.255', 'carrier-grade NAT'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['255.255.255.255', 'broadcast'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.0.170', 'IETF'],
  ['192.0.2.1', 'documentation'],
  ['198.18.0.1', 'benchmarking'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::ffff:127.0.0.1', 'IPv4-mapped'],
  ['::ffff:7f00:1', 'IPv4-mapped'],
  ['::ffff:8.8.8.8', 'IPv4-mapped'],
  ['::ffff:0:10.0.0.1', 'IPv4-translated'],
  ['::127.0.0.1', 'IPv4-compatible'],
  ['::a00:1', 'IPv4-compatible'],
  ['64:ff9b::a00:1', 'NAT64'],
  ['64:ff9b::10.0.0.1', 'NAT64'],
  ['64:ff9b:1::a00:1', 'NAT64'],
  ['2002:7f00:1::1', '6to4'],
  ['2002:a9fe:a9fe::', '6to4'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
  ['2001:db8::1', 'documentation'],
  ['fd00:ec2::254', 'metadata'],
  ['fc00::1', 'unique local'],
  ['fdff:ffff::1', 'unique local'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf::1', 'link-local'],
  ['fec0::1', 'site-local'],
  ['ff02::1', 'multicast'],
  ['100::1', 'discard'],
  ['4000::1', 'not global unicast'],
  ['', 'not an IP address'],
  ['localhost', 'not an IP address'],
  ['127.1', 'not an IP address'],
  ['2130706433', 'not an IP address'],
  ['0x7f.0.0.1', 'not an IP address'],
  ['0177.0.0.1', 'not an IP address'],
  ['1.2.3.256', 'not an IP address'],
  ['1::2::3', 'not an IP address'],
  ['1:2:3:4:5:6:7:8:9', 'not an IP address'],
  ['[::1]', 'not an IP address'],
];

const ALLOWED = [
  '8.8.8.8',
  '1.1.1.1',
  '93.184.216.34',
  '172.32.0.1',
  '100.128.0.1',
  '169.253.255.255',
  '168.63.129.15',
  '168.63.129.17',
  '2606:4700::1111',
  '2a00:1450:4001:80b::200e',
];

describe('AddressGuard default refusals', () => {
  const guard = new AddressGuard();
  it.each(REFUSED)('refuses %s (%s)', (address, why) => {
    const verdict = guard.vet(address, 'allowed.test');
    expect(verdict.allowed).toBe(false);
    if (!verdict.allowed) expect(verdict.reason).toContain(why);
  });
  it.each(ALLOWED)('allows public %s', (address) => {
    expect(guard.vet(address, 'allowed.test').allowed).toBe(true);
  });
});

describe('AddressGuard allowances', () => {
  const guard = new AddressGuard({
    allow: [
      { range: '127.0.0.2', hosts: ['allowed.test', '*.svc.test'] },
      { range: '10.20.0.0/16' },
    ],
    ownAddresses: ['127.0.0.1', '10.20.0.1'],
  });

  it('allows an allowance only for the named hosts', () => {
    expect(guard.vet('127.0.0.2', 'allowed.test')).toMatchObject({
      allowed: true,
      rule: 'allowance:127.0.0.2',
    });
    expect(guard.vet('127.0.0.2', 'a.svc.test').allowed).toBe(true);
    expect(guard.vet('127.0.0.2', 'other.test').allowed).toBe(false);
    expect(guard.vet('127.0.0.2').allowed).toBe(false);
    expect(guard.vet('127.0.0.3', 'allowed.test').allowed).toBe(false);
  });

  it('an allowance without hosts covers every host in its range', () => {
    expect(guard.vet('10.20.3.4', 'any.test').allowed).toBe(true);
    expect(guard.vet('10.21.0.1', 'any.test').allowed).toBe(false);
  });

  it('does not let IPv4-embedding IPv6 forms ride on an IPv4 allowance', () => {
    expect(guard.vet('::ffff:127.0.0.2', 'allowed.test').allowed).toBe(false);
    expect(guard.vet('::ffff:10.20.3.4', 'any.test').allowed).toBe(false);
  });

  it("refuses the proxy's own addresses even inside an allowance", () => {
    expect(guard.vet('10.20.0.1', 'any.test')).toMatchObject({
      allowed: false,
      rule: 'own-address',
    });
    expect(guard.vet('127.0.0.1', 'allowed.test').allowed).toBe(false);
  });

  it('rejects malformed allowances', () => {
    expect(() => new AddressGuard({ allow: [{ range: '10.0.0.0/33' }] })).toThrow();
    expect(() => new AddressGuard({ allow: [{ range: 'example.test' }] })).toThrow();
    expect(
      () => new AddressGuard({ allow: [{ range: '10.0.0.0/8', hosts: ['a*b.test'] }] }),
    ).toThrow();
  });
});

describe('parseIpAddress', () => {
  it('reads IPv6 with an embedded dotted quad and compressed zeros', () => {
    expect(parseIpAddress('::ffff:127.0.0.1')).toEqual(parseIpAddress('::ffff:7f00:1'));
    expect(parseIpAddress('1::')?.value).toBe(1n << 112n);
    expect(parseIpAddress('::')?.value).toBe(0n);
  });
});

describe('a refusal names the setting that opens its range (issue 19 item 6)', () => {
  it('a private, documentation or loopback address: BERTH_EGRESS_ALLOW with the address', () => {
    const guard = new AddressGuard();
    for (const address of ['10.1.2.3', '192.0.2.7', '127.0.0.9', 'fd12::5']) {
      const verdict = guard.vet(address, 'mirror.test');
      expect(verdict.allowed).toBe(false);
      if (verdict.allowed) continue;
      const single = address.includes(':') ? `${address}/128` : `${address}/32`;
      expect(verdict.reason).toContain(`BERTH_EGRESS_ALLOW=${single}`);
    }
  });

  it('never for a cloud metadata or platform service, nor the proxy itself', () => {
    const guard = new AddressGuard({ ownAddresses: ['10.9.9.9'] });
    for (const address of [
      '169.254.169.254',
      '100.100.100.200',
      '168.63.129.16',
      'fd00:ec2::254',
    ]) {
      const verdict = guard.vet(address, 'metadata.test');
      expect(verdict.allowed).toBe(false);
      if (!verdict.allowed) expect(verdict.reason).not.toContain('BERTH_EGRESS_ALLOW');
    }
    const own = guard.vet('10.9.9.9', 'x.test');
    if (!own.allowed) expect(own.reason).not.toContain('BERTH_EGRESS_ALLOW');
  });

  it('the suggested setting does open it', () => {
    const verdict = new AddressGuard({ allow: [{ range: '10.1.2.3/32' }] }).vet(
      '10.1.2.3',
      'm.test',
    );
    expect(verdict.allowed).toBe(true);
  });
});
