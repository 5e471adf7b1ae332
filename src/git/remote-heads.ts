import { fileURLToPath } from 'node:url';
import { parseRemoteHeads, type RemoteHeads } from '../domain/environment/default-branch.js';
import { classifyRepositoryUrl } from '../domain/environment/repository-url.js';
import { runGit } from './run-git.js';
import { readPublicRemoteHeads, type PublicRemoteOptions } from './public-remote-heads.js';
import { readSshRemoteHeads } from './ssh-remote-heads.js';

export interface RepositoryHeadsOptions extends PublicRemoteOptions {
  /**
   * ssh repositories are asked only when this is given (and `credentials` holds the key): the
   * environment's file of host keys trusted on first use, the one its checkout uses (undefined:
   * a temporary file).
   */
  ssh?: { knownHostsFile: string | undefined; anyHost?: boolean | undefined };
}

/**
 * What a repository says about its HEAD and branches, where Berth may ask it when an environment
 * is written: a local repository (path or file:// URL), read on this machine; a public https,
 * http or git:// one, asked from this machine under the guards of public-remote-heads.ts; an ssh
 * one with the environment's key (ssh-remote-heads.ts, when `options.ssh` says so). Both connect
 * only to an address the same policy vets (remote-address.ts: public unicast or `options.allow`,
 * never the machine's own). Others (a
 * name that cannot be public, an ssh repository without its key) are not asked here: undefined
 * (see docs/environments.md, "Default branch").
 */
export async function readRepositoryHeads(
  repository: string,
  options: RepositoryHeadsOptions = {},
): Promise<RemoteHeads | undefined> {
  const kind = classifyRepositoryUrl(repository);
  if (kind.ok && (kind.kind === 'https' || kind.kind === 'http' || kind.kind === 'git'))
    return await readPublicRemoteHeads(repository, options);
  if (kind.ok && kind.kind === 'ssh') {
    if (options.ssh === undefined) return undefined;
    return await readSshRemoteHeads(repository, {
      credentials: options.credentials,
      knownHostsFile: options.ssh.knownHostsFile,
      anyHost: options.ssh.anyHost,
      // The https path's address policy: BERTH_SETUP_ALLOW, never the machine's own addresses.
      allow: options.allow,
      ownAddresses: options.ownAddresses,
      signal: options.signal,
    });
  }
  if (!kind.ok || kind.kind !== 'local') return undefined;
  let path: string;
  try {
    path = repository.startsWith('file:') ? fileURLToPath(repository) : repository;
  } catch {
    return undefined;
  }
  return await readLocalRemoteHeads(path, options.signal);
}

/**
 * Asks a repository on this machine (a local path, as `berth serve --allow-local-repos` allows)
 * for its HEAD and branches: `git ls-remote --symref -- PATH HEAD refs/heads/*`. The path comes
 * after `--`; the host already reads such repositories (the checkout bundles them here), so this
 * reaches nothing the checkout does not. Undefined when it cannot be read (no such path, not a
 * repository): the checkout then says why.
 */
export async function readLocalRemoteHeads(
  path: string,
  signal?: AbortSignal,
): Promise<RemoteHeads | undefined> {
  try {
    const result = await runGit(['ls-remote', '--symref', '--', path, 'HEAD', 'refs/heads/*'], {
      cwd: '/',
      // Nothing from the operator's configuration changes what a local repository is.
      env: { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
      ...(signal ? { signal } : {}),
    });
    return result.code === 0 ? parseRemoteHeads(result.stdout) : undefined;
  } catch {
    return undefined;
  }
}
