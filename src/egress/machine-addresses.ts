/**
 * Threat model. The egress proxy runs on the host; a name that resolves to one of the host's own
 * addresses would let a sandbox reach the host's services (the Berth API, the Docker API, a
 * database) through the proxy, past the firewall that only guards the sandbox's bridge. The
 * address guard refuses the proxy's own addresses even where an operator's allowance covers
 * them, so it needs every address this machine answers on.
 *
 * Trusted: the kernel's view of the machine (`/proc`). Guarantee: every local IPv4 address in the
 * kernel's local routing table and every IPv6 address of every interface, whatever the link state
 * (a bridge without containers is "down" yet its address still reaches the host), plus what
 * `os.networkInterfaces()` reports. Loopback is left out: the guard refuses it unless the
 * operator allows it on purpose.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

function readProc(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

let cached: { at: number; addresses: string[] } | undefined;

/**
 * The machine's addresses as read at most `maxAgeMs` ago: one read of `/proc` serves every proxy
 * of the process (one per attempt), however many connections they check.
 */
export function recentMachineAddresses(maxAgeMs: number, now = Date.now()): string[] {
  if (cached === undefined || now - cached.at >= maxAgeMs) {
    cached = { at: now, addresses: machineAddresses() };
  }
  return cached.addresses;
}

/** The machine's addresses, loopback aside, sorted (a stable key for "did they change"). */
export function machineAddresses(): string[] {
  const found = new Set<string>();
  // `|-- 172.17.0.1` followed by `/32 host LOCAL`: an address the host itself answers on.
  const lines = readProc('/proc/net/fib_trie').split('\n');
  for (let i = 1; i < lines.length; i++) {
    if (!/^\s*\/32 host LOCAL/.test(lines[i] ?? '')) continue;
    const address = /\|--\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(lines[i - 1] ?? '')?.[1];
    if (address !== undefined && !address.startsWith('127.')) found.add(address);
  }
  // 32 hex digits per address, then index, prefix, scope, flags, interface.
  for (const line of readProc('/proc/net/if_inet6').split('\n')) {
    const hex = /^([0-9a-f]{32})\s/i.exec(line)?.[1];
    if (hex === undefined) continue;
    const address = (hex.match(/.{4}/g) ?? []).join(':').toLowerCase();
    if (address !== '0000:0000:0000:0000:0000:0000:0000:0001') found.add(address);
  }
  for (const info of Object.values(os.networkInterfaces()).flatMap((list) => list ?? [])) {
    if (!info.internal) found.add(info.address);
  }
  return [...found].sort();
}
