import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { vetRemoteHost, type RemoteAddressPolicy } from './remote-address.js';

/**
 * Where the server's host may connect for an https, http or git:// repository, and the git
 * options and environment that hold it there: used by everything that runs git on the host
 * against such a remote with an environment's credentials (the checkout's host-side fetch,
 * checkout.ts `bundleRemoteRepository`, and `task pr`'s clone and push, pull-request-service.ts),
 * as ssh-target.ts is for ssh.
 *
 * Threat model. The URL is a token holder's (an environment's or a task's repository): its host
 * may be an IP literal or a name resolving to the server itself (loopback, the machine's own
 * public or bridge addresses), the Docker bridge, a cloud metadata service or the site's private
 * network, and git on the server's host would connect there with the repository's token (no
 * firewall stands in front of the host; git's errors tell a port scan what answers). A remote
 * that answers with a redirect would send git, and the token after its 401, elsewhere. So:
 * - the host's addresses are vetted by the egress proxy's AddressGuard (remote-address.ts: public
 *   unicast, or inside the operator's BERTH_SETUP_ALLOW; never one of the machine's own
 *   addresses), a name resolved once here;
 * - git connects to that vetted address only: `http.curloptResolve` pins the name for https and
 *   http (git 2.37 and later; an older git is refused for a name), a git:// URL is rewritten to
 *   the vetted address itself (the git protocol has no such pin);
 * - `http.followRedirects=false`, and `protocol.allow=never` but for the URL's own protocol;
 * - no system or global git configuration (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null, no
 *   HOME), so none of the operator's credential helpers, `url.*.insteadOf`, proxies or hooks;
 *   no proxy from the environment (http_proxy and the like emptied) and no prompt.
 * The caller adds its own credential helper (checkout.ts `credentialArgs`) after these options.
 * Trusted: the operator's allowances and the kernel's list of the machine's addresses.
 * Untrusted: the URL and what its name resolves to. Not guaranteed: that a public address is
 * the repository.
 */

export type HttpTarget =
  | {
      ok: true;
      /** The URL git is given (a git:// URL rewritten to the vetted address). */
      url: string;
      /** The vetted address. */
      address: string;
      /** `-c` options for git, before the subcommand. */
      args: string[];
      /** Variables for git's environment. */
      env: Record<string, string>;
    }
  | { ok: false; reason: string };

/** The git daemon's port, for a git:// URL that names none. */
const GIT_DAEMON_PORT = '9418';
const DEFAULT_PORT: Record<string, string> = {
  'https:': '443',
  'http:': '80',
  'git:': GIT_DAEMON_PORT,
};

/** git's environment for a vetted remote: no configuration but the command line's, no proxy. */
export const ISOLATED_GIT_ENV: Readonly<Record<string, string>> = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  // Configuration the server's own environment would pass to every git (url.*.insteadOf, say).
  GIT_CONFIG_COUNT: '0',
  GIT_CONFIG_PARAMETERS: '',
  HOME: '/nonexistent',
  GIT_TERMINAL_PROMPT: '0',
  GIT_ASKPASS: '/bin/false',
  SSH_ASKPASS: '/bin/false',
  GIT_PROXY_COMMAND: '',
  http_proxy: '',
  https_proxy: '',
  HTTP_PROXY: '',
  HTTPS_PROXY: '',
  ALL_PROXY: '',
  all_proxy: '',
};

/** The vetted address of an https, http or git:// URL's host and the git options pinning it. */
export async function vetHttpTarget(
  repository: string,
  policy: RemoteAddressPolicy,
  signal: AbortSignal,
): Promise<HttpTarget> {
  let url: URL;
  try {
    url = new URL(repository);
  } catch {
    return { ok: false, reason: 'the URL cannot be read' };
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'https' && scheme !== 'http' && scheme !== 'git')
    return { ok: false, reason: `${url.protocol} is not https, http or git://` };
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === '') return { ok: false, reason: 'the URL names no host' };
  const verdict = await vetRemoteHost(host, policy, signal);
  if (!verdict.ok) return verdict;
  const port = url.port !== '' ? url.port : (DEFAULT_PORT[url.protocol] ?? '');
  const pinned = isIP(verdict.address) === 6 ? `[${verdict.address}]` : verdict.address;
  const only = ['-c', 'protocol.allow=never', '-c', `protocol.${scheme}.allow=always`];
  if (scheme === 'git') {
    return {
      ok: true,
      url: `git://${pinned}:${port}${url.pathname}${url.search}`,
      address: verdict.address,
      args: only,
      env: { ...ISOLATED_GIT_ENV },
    };
  }
  const literal = isIP(host) !== 0;
  if (!literal && !(await gitPinsAddresses()))
    return { ok: false, reason: "this host's git is older than 2.37 and cannot pin an address" };
  return {
    ok: true,
    url: url.href,
    address: verdict.address,
    args: [
      // The name is connected to at the vetted address only (an IP literal needs no pin).
      ...(literal ? [] : ['-c', `http.curloptResolve=${host}:${port}:${pinned}`]),
      '-c',
      'http.followRedirects=false',
      ...only,
    ],
    env: { ...ISOLATED_GIT_ENV },
  };
}

let pinning: Promise<boolean> | undefined;

/** Whether this git honours `http.curloptResolve` (2.37 and later). */
export function gitPinsAddresses(): Promise<boolean> {
  pinning ??= new Promise((resolve) => {
    execFile('git', ['--version'], (error, stdout) => {
      const [major = 0, minor = 0] = (/(\d+)\.(\d+)/.exec(stdout)?.slice(1) ?? []).map(Number);
      resolve(!error && (major > 2 || (major === 2 && minor >= 37)));
    });
  });
  return pinning;
}
