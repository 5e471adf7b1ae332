import { spawn } from 'node:child_process';
import { isIP } from 'node:net';
import { parseRemoteHeads, type RemoteHeads } from '../domain/environment/default-branch.js';
import { credentialArgs, type GitCredentials } from '../lifecycle/checkout.js';
import { vetHttpTarget } from './http-target.js';

/**
 * Asks a public https, http or git:// repository for its HEAD and branches from the server's own
 * host, when an environment is written (`git ls-remote --symref -- URL HEAD 'refs/heads/*'`).
 *
 * Threat model. The URL is a user's: its host may name (or resolve to) the server itself, the
 * Docker bridge, a cloud metadata service or the site's private network, and the server would be
 * the one asking (the setup network's firewall does not stand in front of the host). So:
 * - only https, http and git:// URLs without user information are asked (ssh is asked with the
 *   environment's key, ssh-remote-heads.ts); a
 *   repository's own credentials (a token) go only to its own URL's vetted address, through the
 *   checkout's one-shot credential helper, and never to another host (no redirect is followed);
 * - a host under a name reserved for documentation and tests (`.test`, `.example`, `.invalid`,
 *   `.localhost`, `.local`, `example.com|net|org`) or without a dot is not asked, nor resolved;
 * - every address the name resolves to (an IP literal too) is vetted by the egress proxy's
 *   AddressGuard (remote-address.ts, through http-target.ts, which the checkout's host-side
 *   fetch and `task pr` use too): public unicast only, or inside an operator's
 *   BERTH_SETUP_ALLOW range (what the setup network may reach too), never one of the machine's
 *   own addresses; git then connects to that vetted address only (`http.curloptResolve` pins the
 *   name, so a second resolution cannot differ; a git:// URL is rewritten to the vetted address
 *   itself, the git protocol having no such pin), follows no redirect, speaks no other protocol
 *   than the URL's own, and runs without the operator's git configuration, credential helpers,
 *   proxies (`core.gitProxy`, GIT_PROXY_COMMAND) or prompts;
 * - it is bounded in time (10 s) and what it reads (branch names, shown in a refusal).
 * What reaches the user: the branch names, or nothing (a repository that cannot be asked is
 * treated as not asked). Not guaranteed: that the answer is true (the repository's owner says it).
 */

const RESERVED_NAME =
  /(^|\.)(test|example|invalid|localhost|local)$|(^|\.)example\.(com|net|org)$/i;
const TIMEOUT_MS = 10_000;

export interface PublicRemoteOptions {
  /** Address ranges allowed besides the public internet (BERTH_SETUP_ALLOW). */
  allow?: readonly string[];
  /** More addresses never connected to besides the machine's own (remote-address.ts). */
  ownAddresses?: readonly string[];
  /**
   * The environment's own `repository.credentials` (a token), for its own URL only: given to git
   * through the checkout's one-shot credential helper, sent only to the vetted address after its
   * 401 (no redirect is followed, so never to another host).
   */
  credentials?: GitCredentials | undefined;
  signal?: AbortSignal;
}

export async function readPublicRemoteHeads(
  repository: string,
  options: PublicRemoteOptions = {},
): Promise<RemoteHeads | undefined> {
  let url: URL;
  try {
    url = new URL(repository);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:' && url.protocol !== 'git:')
    return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!mayBeAsked(host)) return undefined;
  const signal = AbortSignal.any([
    AbortSignal.timeout(TIMEOUT_MS),
    ...(options.signal ? [options.signal] : []),
  ]);
  // The vetted address only, no redirect, no other protocol, no operator configuration: the
  // checkout's and `task pr`'s policy (http-target.ts).
  const target = await vetHttpTarget(url.href, options, signal);
  if (!target.ok) return undefined;
  // git:// has no credentials (the protocol has none).
  const helper =
    url.protocol === 'git:' ? { args: [], env: {} } : credentialArgs(options.credentials);
  const output = await boundedGit(
    [
      ...target.args,
      ...helper.args,
      'ls-remote',
      '--symref',
      '--',
      target.url,
      'HEAD',
      'refs/heads/*',
    ],
    { ...target.env, ...helper.env },
    signal,
  );
  return output === undefined ? undefined : parseRemoteHeads(output);
}

/**
 * Whether a repository's host may be asked at all: an address literal (vetted next, as every
 * address: remote-address.ts), or a name with a dot that is not reserved for documentation and
 * tests (such a name is not even resolved).
 */
export function mayBeAsked(host: string): boolean {
  if (isIP(host) !== 0) return true;
  return host.includes('.') && !RESERVED_NAME.test(host.replace(/\.$/, ''));
}

/** At most this much of git's answer is read; past it the answer is dropped. */
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

/**
 * git's standard output, or undefined (a failure, a time-out, too much). git runs in a process
 * group of its own, ended whole (ssh and git's helpers with it) when `signal` aborts.
 */
export function boundedGit(
  args: string[],
  env: Record<string, string>,
  signal: AbortSignal,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(undefined);
      return;
    }
    const child = spawn('git', args, {
      detached: true,
      cwd: '/',
      env: {
        PATH: '/usr/local/bin:/usr/bin:/bin',
        HOME: '/nonexistent',
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_TERMINAL_PROMPT: '0',
        GIT_ASKPASS: '/bin/false',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    signal.addEventListener('abort', killGroup, { once: true });
    const chunks: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT_BYTES) killGroup();
      else chunks.push(chunk);
    });
    child.on('error', () => resolve(undefined));
    child.on('close', (code) => {
      signal.removeEventListener('abort', killGroup);
      resolve(
        code === 0 && size <= MAX_OUTPUT_BYTES && !signal.aborted
          ? Buffer.concat(chunks).toString('utf8')
          : undefined,
      );
    });
  });
}
