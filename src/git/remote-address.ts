import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { AddressGuard } from '../egress/address-guard.js';
import { recentMachineAddresses } from '../egress/machine-addresses.js';

/**
 * The one address the server's host may connect to when it asks a repository for its default
 * branch (public-remote-heads.ts for https, http and git://; ssh-remote-heads.ts for ssh).
 *
 * Threat model. The repository's host is a user's (any token holder who writes an environment):
 * an IP literal or a name that resolves to the server itself (loopback, or the machine's own
 * public or bridge addresses), the Docker bridge, a cloud metadata service or the site's private
 * network, and the server's host would be the one connecting (no firewall stands in front of the
 * host). So every address, a literal's included, is vetted by the egress proxy's AddressGuard:
 * public unicast only, or inside an operator's allowance (`BERTH_SETUP_ALLOW`, what the setup
 * network may reach too); the machine's own addresses (read from the kernel, every interface)
 * are refused even inside an allowance, loopback unless allowed. The caller connects to the
 * returned address only (a pin), so a second resolution cannot differ.
 * Trusted: the operator's allowances, the kernel's list of the machine's addresses. Untrusted: the
 * host and whatever it resolves to. Not guaranteed: that a public address is the repository.
 */

/** How old the machine's address list may be (one read of /proc serves many lookups). */
const MACHINE_ADDRESSES_MAX_AGE_MS = 5_000;

export interface RemoteAddressPolicy {
  /** Address ranges allowed besides the public internet (BERTH_SETUP_ALLOW). */
  allow?: readonly string[] | undefined;
  /** More addresses never connected to, besides the machine's own (tests, listeners). */
  ownAddresses?: readonly string[] | undefined;
}

/**
 * The first address of `host` (an IP literal, or a name resolved here) that the guard allows,
 * or undefined (none, the name does not resolve, `signal` ended the lookup).
 */
export async function vettedRemoteAddress(
  host: string,
  policy: RemoteAddressPolicy,
  signal: AbortSignal,
): Promise<string | undefined> {
  const verdict = await vetRemoteHost(host, policy, signal);
  return verdict.ok ? verdict.address : undefined;
}

/** The vetted address of `host`, or why there is none (for a message). */
export async function vetRemoteHost(
  host: string,
  policy: RemoteAddressPolicy,
  signal: AbortSignal,
): Promise<{ ok: true; address: string } | { ok: false; reason: string }> {
  const guard = new AddressGuard({
    allow: (policy.allow ?? []).map((range) => ({ range })),
    ownAddresses: [
      ...(policy.ownAddresses ?? []),
      ...recentMachineAddresses(MACHINE_ADDRESSES_MAX_AGE_MS),
    ],
  });
  let addresses: string[];
  try {
    addresses =
      isIP(host) !== 0
        ? [host]
        : (await withSignal(lookup(host, { all: true }), signal)).map((a) => a.address);
  } catch {
    return { ok: false, reason: `${host} does not resolve` };
  }
  const refusals: string[] = [];
  for (const address of addresses) {
    const verdict = guard.vet(address, host.toLowerCase());
    if (verdict.allowed) return { ok: true, address };
    // The guard's hint names the egress proxy's setting; here it is BERTH_SETUP_ALLOW.
    const reason =
      verdict.rule === 'own-address'
        ? "one of this machine's own addresses"
        : verdict.reason.replace(/ \(refused by default;.*\)$/, '');
    refusals.push(`${address}: ${reason}`);
  }
  return { ok: false, reason: refusals.join('; ') || `${host} has no address` };
}

/** `promise`, or a rejection once `signal` aborts (a lookup cannot be cancelled itself). */
function withSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new Error('aborted'));
    if (signal.aborted) abort();
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
