/**
 * Threat model. The egress proxy dials addresses on behalf of a sandbox that may run hostile
 * code. A name on the allowlist proves nothing about where it points: its owner (or whoever
 * controls a resolver on the way) can make it resolve to the host itself, to the Docker bridge,
 * to another sandbox, to a cloud metadata service or to the site's private network. The guard is
 * the last check before a dial: it refuses every address that is not public unicast, including
 * the IPv6 forms that carry an IPv4 address inside (mapped, compatible, translated, NAT64, 6to4,
 * Teredo) since those can lead back to a private IPv4 destination through a translator.
 *
 * Trusted: the operator's allowances (configuration) and the proxy's own addresses.
 * Untrusted: every resolved address. An address the parser cannot read is refused.
 * Guarantee: `vet` allows an address only if it is outside every refused range, or inside an
 * allowance whose host patterns match the name being dialled; the proxy's own addresses are
 * refused even when an allowance covers them.
 */
import {
  findMatchingRule,
  parseDomainPattern,
  type DomainRule,
} from '../domain/internet/host-name.js';
import { BerthError } from '../errors/berth-error.js';

export interface ParsedAddress {
  family: 4 | 6;
  /** 32 bits for IPv4, 128 bits for IPv6. */
  value: bigint;
}

/** Parses a literal IPv4 (dotted decimal, exactly four parts) or IPv6 address (zone id dropped). */
export function parseIpAddress(text: string): ParsedAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIpv6(text.replace(/%[0-9a-z._~-]+$/i, ''));
  if (v6 !== undefined) return { family: 6, value: v6 };
  return undefined;
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIpv6(text: string): bigint | undefined {
  if (!/^[0-9a-f:.]+$/i.test(text) || text.length > 45) return undefined;
  let head = text;
  let tail4: bigint | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    tail4 = parseIpv4(text.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): string[] | undefined => {
    if (s === '') return [];
    const g = s.split(':');
    return g.every((x) => /^[0-9a-f]{1,4}$/i.test(x)) ? g : undefined;
  };
  const left = groups(halves[0] ?? '');
  const right = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (left === undefined || right === undefined) return undefined;
  let all: string[];
  if (halves.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return undefined;
    all = [...left, ...Array<string>(missing).fill('0'), ...right];
  } else {
    all = left;
  }
  if (all.length !== 8) return undefined;
  let value = 0n;
  for (const g of all) value = (value << 16n) | BigInt(parseInt(g, 16));
  if (tail4 !== undefined) value = (value & ~0xffffffffn) | tail4;
  return value;
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

export function parseCidr(text: string): Cidr {
  const [addr, prefixText] = text.split('/');
  const parsed = parseIpAddress(addr ?? '');
  const bits = parsed?.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (
    parsed === undefined ||
    !/^[0-9]{0,3}$/.test(prefixText ?? '') ||
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > bits
  ) {
    throw new BerthError('invalid_input', `not an address range: ${text}`, { range: text });
  }
  return { family: parsed.family, base: maskOf(parsed.value, prefix, bits), prefix };
}

function maskOf(value: bigint, prefix: number, bits: number): bigint {
  const hostBits = BigInt(bits - prefix);
  return (value >> hostBits) << hostBits;
}

export function cidrContains(cidr: Cidr, address: ParsedAddress): boolean {
  if (cidr.family !== address.family) return false;
  return maskOf(address.value, cidr.prefix, address.family === 4 ? 32 : 128) === cidr.base;
}

interface RefusedRange {
  cidr: Cidr;
  text: string;
  reason: string;
}

/**
 * Refused ranges, most specific first (the first match names the reason). The setup network's
 * firewall refuses the same ranges (src/adapters/firewall/setup-network-firewall.ts). Besides the
 * special-purpose ranges (RFC 6890 and its IPv6 registry), the cloud platforms' service addresses:
 * their metadata services are link-local (169.254.169.254: AWS, GCP, Azure, Oracle, DigitalOcean,
 * Hetzner; 169.254.0.23: Tencent), carrier-grade NAT (100.100.100.200: Alibaba) or unique local
 * (fd00:ec2::254: AWS), all refused with their range; the one known to sit on a public-range
 * address is Azure's WireServer, listed on its own.
 */
export const REFUSED_ADDRESS_RANGES: ReadonlyArray<[string, string]> = [
  // IPv4
  ['255.255.255.255/32', 'broadcast'],
  ['0.0.0.0/8', 'unspecified / "this network"'],
  ['10.0.0.0/8', 'private (RFC 1918)'],
  // Alibaba Cloud's metadata service (inside carrier-grade NAT; named for the log).
  // https://www.alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata
  ['100.100.100.200/32', 'cloud metadata service'],
  ['100.64.0.0/10', 'carrier-grade NAT (RFC 6598)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.169.254/32', 'cloud metadata service'],
  ['169.254.0.0/16', 'link-local'],
  // Azure's WireServer (VM agent, extensions, health probes, DNS): a public-range address that
  // answers only inside Azure, and that Azure asks to keep containers away from.
  // https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
  ['168.63.129.16/32', 'cloud platform service (Azure WireServer)'],
  ['172.16.0.0/12', 'private (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', '6to4 relay anycast'],
  ['192.168.0.0/16', 'private (RFC 1918)'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  // IPv6
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0/96', 'IPv4-mapped IPv6 (embeds an IPv4 address)'],
  ['::ffff:0:0:0/96', 'IPv4-translated IPv6 (embeds an IPv4 address)'],
  ['::/96', 'IPv4-compatible IPv6 (embeds an IPv4 address)'],
  ['64:ff9b::/96', 'NAT64 (embeds an IPv4 address)'],
  ['64:ff9b:1::/48', 'local NAT64 (embeds an IPv4 address)'],
  ['100::/64', 'discard-only'],
  ['2001::/32', 'Teredo (embeds an IPv4 address)'],
  ['2001:db8::/32', 'documentation'],
  ['2002::/16', '6to4 (embeds an IPv4 address)'],
  ['3fff::/20', 'documentation'],
  ['fd00:ec2::254/128', 'cloud metadata service'],
  ['fc00::/7', 'unique local (ULA)'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
];

const REFUSED_RANGES: readonly RefusedRange[] = REFUSED_ADDRESS_RANGES.map(([text, reason]) => ({
  cidr: parseCidr(text),
  text,
  reason,
}));
/** Everything outside global unicast is refused, whatever the table above says. */
export const GLOBAL_UNICAST_V6_TEXT = '2000::/3';
const GLOBAL_UNICAST_V6 = parseCidr(GLOBAL_UNICAST_V6_TEXT);

/** An operator's (or a test's) exception: addresses in `range` may be dialled for the given host patterns. */
export interface AddressAllowance {
  /** An address or CIDR range ("127.0.0.2", "10.1.0.0/16"). */
  range: string;
  /** Host patterns (exact or `*.suffix`) this allowance is for; omitted means every host. */
  hosts?: readonly string[];
}

export interface AddressGuardOptions {
  allow?: readonly AddressAllowance[];
  /** The proxy's own addresses: never dialled. */
  ownAddresses?: readonly string[];
}

export type AddressVerdict =
  | { allowed: true; address: string; family: 4 | 6; rule: string }
  | { allowed: false; address: string; reason: string; rule: string };

interface CompiledAllowance {
  cidr: Cidr;
  range: string;
  hosts: DomainRule[] | undefined;
}

export class AddressGuard {
  private readonly allowances: CompiledAllowance[];
  private readonly own: ParsedAddress[];

  constructor(options: AddressGuardOptions = {}) {
    this.allowances = (options.allow ?? []).map((a) => ({
      cidr: parseCidr(a.range),
      range: a.range,
      hosts: a.hosts?.map((pattern) => {
        const parsed = parseDomainPattern(pattern);
        if (!parsed.ok)
          throw new BerthError('invalid_input', `address allowance: ${parsed.reason}`, { pattern });
        return parsed.rule;
      }),
    }));
    this.own = (options.ownAddresses ?? []).flatMap((a) => {
      const parsed = parseIpAddress(a);
      return parsed === undefined ? [] : [parsed];
    });
  }

  /** Whether `address` may be dialled for `host` (a normalised host name). */
  vet(address: string, host?: string): AddressVerdict {
    const parsed = parseIpAddress(address);
    if (parsed === undefined)
      return { allowed: false, address, reason: 'not an IP address', rule: 'unparsable' };
    if (this.own.some((o) => o.family === parsed.family && o.value === parsed.value)) {
      return { allowed: false, address, reason: "the proxy's own address", rule: 'own-address' };
    }
    const refused = this.refusal(parsed);
    if (refused === undefined)
      return { allowed: true, address, family: parsed.family, rule: 'public' };
    for (const allowance of this.allowances) {
      if (!cidrContains(allowance.cidr, parsed)) continue;
      if (
        allowance.hosts !== undefined &&
        (host === undefined || findMatchingRule(allowance.hosts, host) === undefined)
      ) {
        continue;
      }
      return {
        allowed: true,
        address,
        family: parsed.family,
        rule: `allowance:${allowance.range}`,
      };
    }
    return {
      allowed: false,
      address,
      reason: `${refused.reason} address${allowHint(refused.text, address)}`,
      rule: refused.text,
    };
  }

  private refusal(address: ParsedAddress): { text: string; reason: string } | undefined {
    const hit = REFUSED_RANGES.find((r) => cidrContains(r.cidr, address));
    if (hit !== undefined) return hit;
    if (address.family === 6 && !cidrContains(GLOBAL_UNICAST_V6, address)) {
      return { text: '!2000::/3', reason: 'not global unicast IPv6' };
    }
    return undefined;
  }
}

/** Ranges never suggested for opening: a sandbox reaching them reaches the platform's secrets. */
const NEVER_SUGGESTED = new Set(
  REFUSED_ADDRESS_RANGES.filter(([, reason]) => reason.startsWith('cloud ')).map(([text]) => text),
);

/**
 * The setting that opens a range refused by default (a site's registry mirror on a private
 * network, issue 19 item 6): the operator's `BERTH_EGRESS_ALLOW` on the server. Not said for the
 * cloud metadata and platform services, nor for what no range covers (IPv6 outside global unicast).
 */
function allowHint(rangeText: string, address: string): string {
  if (NEVER_SUGGESTED.has(rangeText) || rangeText.startsWith('!')) return '';
  const single = address.includes(':') ? `${address}/128` : `${address}/32`;
  return ` (refused by default; the server's BERTH_EGRESS_ALLOW=${single} opens it)`;
}
