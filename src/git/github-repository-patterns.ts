import type { GitHubRepository } from './github-remote.js';

/**
 * `BERTH_GITHUB_REPOSITORIES`: which GitHub repositories the server's own token may push to and
 * open pull requests on. A pattern is `OWNER/NAME`, where either segment may be `*` (any), as in
 * `acme/*`; GitHub compares names without case, and so do these patterns. No patterns: every
 * repository (the token's own permissions are the only limit).
 */

/** A valid pattern: two segments, each `*` or a GitHub name. */
export const GITHUB_REPOSITORY_PATTERN = /^(?:\*|[A-Za-z0-9_.-]+)\/(?:\*|[A-Za-z0-9_.-]+)$/;

export function githubRepositoryAllowed(
  repository: GitHubRepository,
  patterns: readonly string[],
): boolean {
  if (patterns.length === 0) return true;
  const owner = repository.owner.toLowerCase();
  const name = repository.repo.toLowerCase();
  return patterns.some((pattern) => {
    const [o = '', n = ''] = pattern.toLowerCase().split('/');
    return (o === '*' || o === owner) && (n === '*' || n === name);
  });
}
