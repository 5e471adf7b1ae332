import { parseRemoteHeads, type RemoteHeads } from '../domain/environment/default-branch.js';
import type { GitCredentials } from '../lifecycle/checkout.js';
import { SshKeySession } from '../lifecycle/ssh-key-session.js';
import { boundedGit, mayBeAsked } from './public-remote-heads.js';

/**
 * Asks an ssh repository (ssh:// or user@host:path) for its HEAD and branches from the server's
 * host with the environment's private key, when an environment is written
 * (`git ls-remote --symref -- URL HEAD 'refs/heads/*'`).
 *
 * Threat model. The URL and the key are the environment writer's; the host and port may be any.
 * The checkout already fetches this repository on the host with this key (checkout.ts,
 * `bundleSshRepository`), so asking it reaches no host or port the cache build does not, with
 * the same ssh: the key in a 0600 file of a fresh 0700 directory deleted afterwards, no
 * operator configuration, agent, agent forwarding or other identity (`-F /dev/null`,
 * IdentityAgent=none, IdentitiesOnly), no prompt (BatchMode), and the same host keys: the
 * environment's pinned `knownHosts` (strict), else its file of keys trusted on first use (the
 * checkout's, so a key first seen here is the one its clone must meet, and a changed key fails
 * here too), else a temporary file. git speaks ssh only (`protocol.allow`), without the operator's
 * git configuration or credential helpers; it is ended with its ssh after 20 s and what it reads
 * is bounded (4 MB: branch names, shown in a refusal). Without a key nothing is asked, nor for a
 * host without a dot or under a name reserved for documentation and tests (as for https) when an
 * environment is written; at an attempt's start (`anyHost`) any host, the checkout's own fetch of
 * it with this key following at once.
 * What reaches the user: the branch names, or nothing (a refused key, a host key that does not
 * match, an unreachable host: treated as not asked). Not guaranteed: that the answer is true.
 */

const TIMEOUT_MS = 20_000;

export interface SshRemoteOptions {
  /** The private key (`password`) and the optional pinned host keys. */
  credentials: GitCredentials | undefined;
  /** Without pinned host keys: the environment's file of host keys trusted on first use. */
  knownHostsFile?: string | undefined;
  signal?: AbortSignal | undefined;
  /**
   * At an attempt's start (assumed-default-branch.ts): any host, a dotless or reserved name
   * (`localhost`) too, since the checkout is about to fetch this URL on this host with this key
   * itself; when an environment is written such names are not asked.
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
  let session: SshKeySession;
  try {
    session = await SshKeySession.open(url, options.credentials, options.knownHostsFile);
  } catch {
    return undefined;
  }
  try {
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
      session.env,
      signal,
    );
    return output === undefined ? undefined : parseRemoteHeads(output);
  } finally {
    await session.close();
  }
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
