import { join } from 'node:path';
import type { RemoteHeads } from '../domain/environment/default-branch.js';
import { classifyRepositoryUrl } from '../domain/environment/repository-url.js';
import { readRepositoryHeads } from '../git/remote-heads.js';
import type { Store, StoredEnvironment } from '../ports/store.js';
import type { GitCredentials } from './checkout.js';

/**
 * At an attempt's start, before its cache key: an environment whose default branch was
 * `assumed` (`main`: its remote was not asked or did not answer when the environment was
 * written, such as an ssh repository whose key was set later or a host that was down) asks the
 * remote for its HEAD on the host, with the environment's credentials, exactly as when an
 * environment is written (remote-heads.ts: the same guards, timeouts and host keys), and stores
 * the branch it finds (origin `found`). A named branch is never replaced. When the remote cannot
 * be asked or does not say, the attempt goes on with the assumed branch (its clone then says what
 * to write). An ssh host is asked whatever its name (`localhost` too: the checkout connects to it
 * with this key right after), but only at an address the write path's policy vets
 * (remote-address.ts: public unicast or the operator's BERTH_SETUP_ALLOW, never the machine's own
 * addresses), pinned to that address.
 */

export interface AssumedBranchOptions {
  store: Pick<Store, 'updateEnvironment'>;
  allowLocalRepositories: boolean;
  /** The folder of the environments' ssh host keys trusted on first use (the checkout's). */
  knownHostsDir?: string | undefined;
  /** Address ranges allowed besides the public internet (BERTH_SETUP_ALLOW). */
  allow?: readonly string[];
  readHeads?: (
    repository: string,
    credentials: GitCredentials | undefined,
    ssh: { knownHostsFile: string | undefined },
  ) => Promise<RemoteHeads | undefined>;
  now?: () => string;
}

export interface AssumedBranchResult {
  environment: StoredEnvironment;
  /** The line for the attempt's log when a branch was found. */
  log?: string;
}

export async function findAssumedDefaultBranch(
  environment: StoredEnvironment,
  credentials: GitCredentials | undefined,
  options: AssumedBranchOptions,
): Promise<AssumedBranchResult> {
  if (environment.defaultBranchOrigin !== 'assumed') return { environment };
  const url = environment.spec.repository.url;
  const kind = classifyRepositoryUrl(url);
  if (!kind.ok || (kind.kind === 'local' && !options.allowLocalRepositories)) {
    return { environment };
  }
  const knownHostsFile =
    options.knownHostsDir === undefined ? undefined : join(options.knownHostsDir, environment.id);
  const read =
    options.readHeads ??
    ((repository, given, ssh) =>
      readRepositoryHeads(repository, {
        credentials: given,
        // The checkout fetches this ssh URL on this host right after: any host name, its
        // addresses vetted as when written (allow, the machine's own addresses refused).
        ssh: { ...ssh, anyHost: true },
        ...(options.allow ? { allow: options.allow } : {}),
      }));
  let heads: RemoteHeads | undefined;
  try {
    heads = await read(url, credentials, { knownHostsFile });
  } catch {
    heads = undefined;
  }
  const branch = heads?.head;
  if (branch === undefined) return { environment };
  const spec = {
    ...environment.spec,
    repository: { ...environment.spec.repository, defaultBranch: branch },
  };
  try {
    const stored = await options.store.updateEnvironment(environment.id, {
      spec,
      setSecrets: [],
      removeSecrets: [],
      now: options.now?.() ?? new Date().toISOString(),
      // Written meanwhile (an `env update`): that one decides, as it asked the remote itself.
      expectedRevision: environment.revision,
      defaultBranchOrigin: 'found',
    });
    return { environment: stored, log: `default branch: ${branch} (found on the remote)` };
  } catch {
    return { environment };
  }
}
