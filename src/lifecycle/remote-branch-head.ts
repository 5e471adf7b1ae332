import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { RemoteAddressPolicy } from '../git/remote-address.js';
import { ISOLATED_GIT_ENV, vetHttpTarget } from '../git/http-target.js';
import { vetSshTarget } from '../git/ssh-target.js';
import {
  credentialArgs,
  hostGit,
  validateBranch,
  vetRemoteTarget,
  type GitCredentials,
  type RepositoryLocation,
} from './checkout.js';
import { SshKeySession } from './ssh-key-session.js';

/**
 * The head commit of one branch of an https, http, git:// or ssh repository, fetched on the
 * server's host into a temporary bare repository (depth 1, that one branch, no tags) for a caller
 * that reads objects of it with git's plumbing (the repository file of `repository.config`).
 *
 * Threat model: the URL is a token holder's and may name the server itself, a private range, or
 * a host that redirects. The fetch is the checkout's host-side fetch (checkout.ts): it connects
 * only to the URL host's vetted address (http-target.ts, ssh-target.ts: public unicast, or the
 * operator's BERTH_SETUP_ALLOW ranges, never the machine's own addresses; a refused address fails
 * before git runs), follows no redirect, allows no other protocol, reads no operator git
 * configuration, and takes the environment's credentials only through the one-shot helper (https)
 * or the ssh key session's 0600 file (ssh, host key pinned or trusted on first use in the
 * environment's file). The branch name is validated; the repository gets no working tree and no
 * hook runs. The temporary directory (and the key) is removed whatever happens, and the whole
 * fetch is bounded in time (FETCH_TIMEOUT_MS, or the caller's signal).
 */

export interface RemoteFetchAccess {
  /** The environment's repository credentials (https token, or ssh key and knownHosts). */
  credentials?: GitCredentials | undefined;
  /** Where the host may connect; default: public addresses only. */
  addressPolicy?: RemoteAddressPolicy | undefined;
  /** ssh without knownHosts: the environment's file of host keys trusted on first use. */
  knownHostsFile?: string | undefined;
}

/** How long the fetch of one branch head may take. */
export const FETCH_TIMEOUT_MS = 60_000;

/** git's words when the remote has no such branch. */
const NO_SUCH_REF = /couldn't find remote ref/i;

/**
 * Fetches `branch`'s head of the remote or ssh repository at `location` into a temporary bare
 * repository and calls `use` with its directory and the commit (undefined when the remote has no
 * such branch); the directory is removed when `use` ends.
 */
export async function withRemoteBranchHead<T>(
  location: RepositoryLocation,
  branch: string,
  access: RemoteFetchAccess,
  signal: AbortSignal | undefined,
  use: (gitDir: string, commit: string | undefined) => Promise<T>,
): Promise<T> {
  if (location.kind === 'local') throw new Error('withRemoteBranchHead: a local repository');
  const ref = `refs/heads/${validateBranch(branch)}`;
  const bounded = AbortSignal.any([
    AbortSignal.timeout(FETCH_TIMEOUT_MS),
    ...(signal ? [signal] : []),
  ]);
  const url = location.location;
  const dir = await mkdtemp(join(tmpdir(), 'berth-branch-head-'));
  try {
    const gitDir = join(dir, 'repo.git');
    await hostGit(['init', '--quiet', '--bare', gitDir], bounded);
    const fetched = await (
      location.kind === 'ssh'
        ? fetchSsh(url, gitDir, ref, access, bounded)
        : fetchHttp(url, gitDir, ref, location.credentials ?? access.credentials, access, bounded)
    ).then(
      () => true,
      (error: unknown) => {
        const e = toBerthError(error);
        if (NO_SUCH_REF.test(e.message)) return false;
        throw new BerthError(
          'task_failed',
          `could not fetch branch ${branch} of the repository ${url} on the host: ${e.message.replace(/^git \S+ failed on the host: /, '')}`,
          { reason: 'checkout' },
        );
      },
    );
    const commit = fetched
      ? (await hostGit(['-C', gitDir, 'rev-parse', '--verify', `${ref}^{commit}`], bounded)).trim()
      : undefined;
    return await use(gitDir, commit);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function fetchHttp(
  url: string,
  gitDir: string,
  ref: string,
  credentials: GitCredentials | undefined,
  access: RemoteFetchAccess,
  signal: AbortSignal,
): Promise<void> {
  const target = await vetRemoteTarget(vetHttpTarget, url, access.addressPolicy, signal);
  const cred = credentialArgs(credentials);
  await hostGit(
    [
      '-C',
      gitDir,
      ...target.args,
      ...cred.args,
      'fetch',
      '--quiet',
      '--no-tags',
      '--depth=1',
      '--',
      target.url,
      `+${ref}:${ref}`,
    ],
    signal,
    { ...target.env, ...cred.env },
  );
}

async function fetchSsh(
  url: string,
  gitDir: string,
  ref: string,
  access: RemoteFetchAccess,
  signal: AbortSignal,
): Promise<void> {
  const session = await SshKeySession.open(url, access.credentials, access.knownHostsFile);
  try {
    const target = await vetRemoteTarget(vetSshTarget, url, access.addressPolicy, signal);
    await hostGit(
      [
        '-C',
        gitDir,
        '-c',
        'credential.helper=',
        '-c',
        'protocol.allow=never',
        '-c',
        'protocol.ssh.allow=always',
        'fetch',
        '--quiet',
        '--no-tags',
        '--depth=1',
        '--',
        url,
        `+${ref}:${ref}`,
      ],
      signal,
      {
        ...ISOLATED_GIT_ENV,
        ...session.env,
        GIT_SSH_COMMAND: `${session.env.GIT_SSH_COMMAND ?? 'ssh'} ${target.sshOptions}`,
      },
    );
  } finally {
    await session.close();
  }
}
