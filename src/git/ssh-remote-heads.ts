import { parseRemoteHeads, type RemoteHeads } from '../domain/environment/default-branch.js';
import type { GitCredentials } from '../lifecycle/checkout.js';
import { SshKeySession } from '../lifecycle/ssh-key-session.js';
import { boundedGit, mayBeAsked } from './public-remote-heads.js';
import type { RemoteAddressPolicy } from './remote-address.js';
import { sshHost, vetSshTarget } from './ssh-target.js';

export { pinnedAddressOptions, sshHost, sshPort } from './ssh-target.js';

/**
 * Asks an ssh repository (ssh:// or user@host:path) for its HEAD and branches from the server's
 * host with the environment's private key, when an environment is written
 * (`git ls-remote --symref -- URL HEAD 'refs/heads/*'`).
 *
 * Threat model. The URL and the key are the environment writer's (any token holder); the host
 * and port may be any, an IP literal or a name resolving to the server itself, the Docker bridge,
 * a metadata service or the site's private network. So the host's address is vetted as the https
 * path's (remote-address.ts: the egress proxy's AddressGuard, public unicast only or inside the
 * operator's BERTH_SETUP_ALLOW, never one of the machine's own addresses, loopback only when
 * allowed), a name resolved once here (ssh-target.ts), and ssh connects to that vetted address
 * only (`-o HostName=ADDRESS`) while its host keys are still looked up and recorded under the URL's name
 * (`-o HostKeyAlias=`, `[name]:port` as ssh writes them; CheckHostIP=no), so a second resolution
 * cannot differ and known_hosts lines keep matching. Then the same ssh as the checkout's: the key in a 0600 file of a fresh 0700 directory deleted afterwards, no
 * operator configuration, agent, agent forwarding or other identity (`-F /dev/null`,
 * IdentityAgent=none, IdentitiesOnly), no prompt (BatchMode), and the same host keys: the
 * environment's pinned `knownHosts` (strict), else its file of keys trusted on first use (the
 * checkout's, so a key first seen here is the one its clone must meet, and a changed key fails
 * here too), else a temporary file. git speaks ssh only (`protocol.allow`), without the operator's
 * git configuration or credential helpers; it is ended with its ssh after 20 s and what it reads
 * is bounded (4 MB: branch names, shown in a refusal). Without a key nothing is asked, nor for a
 * host without a dot or under a name reserved for documentation and tests (as for https) when an
 * environment is written, nor a name outside letters, digits, dots and hyphens; at an attempt's
 * start (`anyHost`) such names are resolved too (`localhost`), their addresses vetted the same.
 * What reaches the user: the branch names, or nothing (a refused key, a host key that does not
 * match, an unreachable host: treated as not asked). Not guaranteed: that the answer is true.
 */

const TIMEOUT_MS = 20_000;

export interface SshRemoteOptions extends RemoteAddressPolicy {
  /** The private key (`password`) and the optional pinned host keys. */
  credentials: GitCredentials | undefined;
  /** Without pinned host keys: the environment's file of host keys trusted on first use. */
  knownHostsFile?: string | undefined;
  signal?: AbortSignal | undefined;
  /**
   * At an attempt's start (assumed-default-branch.ts): a dotless or reserved name (`localhost`)
   * too, since the checkout is about to fetch this URL on this host with this key itself; when
   * an environment is written such names are not asked. Its addresses are vetted all the same.
   */
  anyHost?: boolean | undefined;
}

export async function readSshRemoteHeads(
  url: string,
  options: SshRemoteOptions,
): Promise<RemoteHeads | undefined> {
  const key = options.credentials?.password;
  if (key === undefined || key.trim() === '') return undefined;
  const host = sshHost(url);
  if (host === undefined || (options.anyHost !== true && !mayBeAsked(host))) return undefined;
  const signal = AbortSignal.any([
    AbortSignal.timeout(TIMEOUT_MS),
    ...(options.signal ? [options.signal] : []),
  ]);
  const target = await vetSshTarget(url, options, signal);
  if (!target.ok) return undefined;
  let session: SshKeySession;
  try {
    session = await SshKeySession.open(url, options.credentials, options.knownHostsFile);
  } catch {
    return undefined;
  }
  try {
    const env = {
      ...session.env,
      GIT_SSH_COMMAND: `${session.env.GIT_SSH_COMMAND ?? 'ssh'} ${target.sshOptions}`,
    };
    const output = await boundedGit(
      [
        '-c',
        'protocol.allow=never',
        '-c',
        'protocol.ssh.allow=always',
        '-c',
        'credential.helper=',
        'ls-remote',
        '--symref',
        '--',
        url,
        'HEAD',
        'refs/heads/*',
      ],
      env,
      signal,
    );
    return output === undefined ? undefined : parseRemoteHeads(output);
  } finally {
    await session.close();
  }
}
