/**
 * Which GitHub repository (if any) a repository location stands for: `https://github.com/O/R(.git)`,
 * `git@github.com:O/R(.git)`, `ssh://git@github.com/O/R(.git)`, the same forms on the GitHub
 * Enterprise host of the configured API base, or a location listed in `githubRemotes`.
 */

export interface GitHubRepository {
  owner: string;
  repo: string;
}

export interface GitHubRemoteSettings {
  /** The API base (`https://api.github.com`, or `https://HOST/api/v3` for Enterprise). */
  apiUrl: string;
  /** Locations that stand for a GitHub repository: location → `OWNER/REPO`. */
  remotes: Readonly<Record<string, string>>;
}

const NAME = '[A-Za-z0-9_.-]+';

function githubHosts(apiUrl: string): string[] {
  const hosts = ['github.com'];
  try {
    const api = new URL(apiUrl);
    if (api.hostname !== 'api.github.com') hosts.push(api.host.toLowerCase());
  } catch {
    // An unparsable base was refused by the configuration already.
  }
  return hosts;
}

function split(ownerRepo: string): GitHubRepository | undefined {
  const match = new RegExp(`^(${NAME})/(${NAME}?)(?:\\.git)?/?$`).exec(ownerRepo);
  if (!match?.[1] || !match[2]) return undefined;
  return { owner: match[1], repo: match[2] };
}

export function parseGitHubRemote(
  location: string,
  settings: GitHubRemoteSettings,
): GitHubRepository | undefined {
  const mapped = settings.remotes[location];
  if (mapped !== undefined) return split(mapped);
  const hosts = githubHosts(settings.apiUrl);
  const scp = /^[A-Za-z0-9_.-]+@([^:/]+):(.+)$/.exec(location);
  if (scp?.[1] && scp[2] && hosts.includes(scp[1].toLowerCase())) return split(scp[2]);
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return undefined;
  }
  if (!['https:', 'http:', 'ssh:'].includes(url.protocol)) return undefined;
  if (!hosts.includes(url.host.toLowerCase()) && !hosts.includes(url.hostname.toLowerCase()))
    return undefined;
  return split(url.pathname.replace(/^\//, ''));
}
