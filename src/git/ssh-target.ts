import { isIP } from 'node:net';
import { vetRemoteHost, type RemoteAddressPolicy } from './remote-address.js';

/**
 * Where the server's host may connect for an ssh repository, and the ssh options that hold it
 * there: used by everything that runs ssh on the host with an environment's key (the
 * default-branch lookup, ssh-remote-heads.ts, and the checkout's fetch, checkout.ts).
 *
 * Threat model. The URL is a token holder's: its host may be an IP literal or a name resolving to
 * the server itself (loopback, the machine's own public or bridge addresses), the Docker bridge,
 * a cloud metadata service or the site's private network, and ssh on the server's host would
 * connect there (no firewall stands in front of the host; ssh's refusals and banners tell a
 * port scan what answers). So the host's addresses are vetted by the egress proxy's AddressGuard
 * (remote-address.ts: public unicast, or inside the operator's BERTH_SETUP_ALLOW; never one of
 * the machine's own addresses), a name resolved once here, and ssh is given `-o
 * HostName=ADDRESS` so it connects to that vetted address only (a second resolution cannot
 * differ), with `-o HostKeyAlias=` so host keys are still checked and recorded under the URL's
 * name as ssh writes them (`name`, or `[name]:port` off port 22; CheckHostIP=no). A host that is
 * not an IP literal or a plain name (letters, digits, dots, hyphens) is refused: nothing a shell
 * or ssh's option parser could read apart reaches GIT_SSH_COMMAND.
 * Trusted: the operator's allowances and the kernel's list of the machine's addresses.
 * Untrusted: the URL and what its name resolves to.
 */

export type SshTarget =
  | { ok: true; host: string; port: number; address: string; sshOptions: string }
  | { ok: false; reason: string };

/** The vetted address of an ssh URL's host and the ssh options pinning it, or why not. */
export async function vetSshTarget(
  url: string,
  policy: RemoteAddressPolicy,
  signal: AbortSignal,
): Promise<SshTarget> {
  const host = sshHost(url);
  if (host === undefined) return { ok: false, reason: 'the URL names no host' };
  if (isIP(host) === 0 && !PLAIN_NAME.test(host))
    return { ok: false, reason: `"${host}" is not a plain host name` };
  const verdict = await vetRemoteHost(host, policy, signal);
  if (!verdict.ok) return verdict;
  const port = sshPort(url);
  return {
    ok: true,
    host,
    port,
    address: verdict.address,
    sshOptions: pinnedAddressOptions(host, port, verdict.address),
  };
}

/** A host name ssh is given as it is (nothing a shell or ssh's option parser reads apart). */
const PLAIN_NAME = /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?\.?$/i;

/**
 * ssh options connecting to the vetted `address` only, host keys still checked and recorded
 * under the URL's host (as ssh names them in known_hosts: `host`, or `[host]:port` off port 22).
 */
export function pinnedAddressOptions(host: string, port: number, address: string): string {
  const name = host.toLowerCase();
  const alias = port === 22 ? name : `[${name}]:${port}`;
  return [
    `-o ${shellWord(`HostName=${address}`)}`,
    `-o ${shellWord(`HostKeyAlias=${alias}`)}`,
    '-o CheckHostIP=no',
  ].join(' ');
}

/** The port of `ssh://host:port/path` (22 when none; `user@host:path` has none). */
export function sshPort(url: string): number {
  if (!/^ssh:\/\//i.test(url)) return 22;
  try {
    const port = new URL(url).port;
    return port === '' ? 22 : Number(port);
  } catch {
    return 22;
  }
}

/** A word for GIT_SSH_COMMAND (run by a shell): single-quoted. */
function shellWord(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The host of `ssh://[user@]host[:port]/path` or `user@host:path`; undefined when unclear. */
export function sshHost(url: string): string | undefined {
  if (/^ssh:\/\//i.test(url)) {
    try {
      return new URL(url).hostname.replace(/^\[|\]$/g, '') || undefined;
    } catch {
      return undefined;
    }
  }
  return /^[^@/]+@([^:/]+):/.exec(url)?.[1];
}
