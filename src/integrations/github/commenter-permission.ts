import type { Octokit } from '@octokit/rest';
import {
  GITHUB_PERMISSIONS,
  type GitHubPermission,
} from '../../domain/environment/github-trigger.js';
import type { GitHubRepository } from '../../git/github-remote.js';

/**
 * May this commenter ask Berth for work on this repository?
 *
 * Threat model: anyone can comment on a public repository, and a webhook payload's
 * `author_association` says how the author relates to the repository *as shown*, not what they may
 * do (a past contributor is `CONTRIBUTOR`, an organisation member may have no access to this
 * repository; the field also comes and goes with GitHub's privacy settings). So the permission is
 * asked of the API for every comment (`GET /repos/{owner}/{repo}/collaborators/{user}/permission`)
 * and compared with the environment's `triggers.github.allow`; a user GitHub does not know as a
 * collaborator (404), an error, or a level Berth does not know all mean no.
 */

export type PermissionVerdict =
  | { allowed: true; permission: GitHubPermission }
  | { allowed: false; permission: string; reason: string };

/** Whether `have` is at least `least` (unknown levels are below every level). */
export function permissionAtLeast(have: string, least: GitHubPermission): boolean {
  const rank = (GITHUB_PERMISSIONS as readonly string[]).indexOf(have);
  return rank >= 0 && rank >= GITHUB_PERMISSIONS.indexOf(least);
}

export async function checkCommenterPermission(
  octokit: Octokit,
  repository: GitHubRepository,
  login: string,
  least: GitHubPermission,
): Promise<PermissionVerdict> {
  let permission: string;
  try {
    const answer = await octokit.rest.repos.getCollaboratorPermissionLevel({
      owner: repository.owner,
      repo: repository.repo,
      username: login,
    });
    // role_name is the finer level (maintain, triage); permission the coarse one.
    const data = answer.data as { permission?: unknown; role_name?: unknown };
    permission =
      typeof data.role_name === 'string' && data.role_name !== ''
        ? data.role_name
        : typeof data.permission === 'string'
          ? data.permission
          : 'none';
  } catch (error) {
    const status = (error as { status?: unknown }).status;
    return {
      allowed: false,
      permission: 'unknown',
      reason:
        status === 404
          ? `${login} is not a collaborator of ${repository.owner}/${repository.repo}`
          : `GitHub did not say what ${login} may do on ${repository.owner}/${repository.repo} (${String((error as Error).message)})`,
    };
  }
  if (permissionAtLeast(permission, least))
    return { allowed: true, permission: permission as GitHubPermission };
  return {
    allowed: false,
    permission,
    reason: `${login} has ${permission} on ${repository.owner}/${repository.repo}; triggers.github.allow asks for ${least} or more`,
  };
}
