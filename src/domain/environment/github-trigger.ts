import { z } from 'zod';

/**
 * `triggers.github` of an environment file: the one GitHub repository whose issue and pull
 * request comments start tasks in this environment (`OWNER/REPO`), and the least permission a
 * commenter needs on it (`allow`, default `write`), asked of GitHub's API for each comment
 * (docs/github.md). One environment per repository: the environment service refuses a second.
 */

/** GitHub's permission levels, weakest first (`GET /repos/{owner}/{repo}/collaborators/{user}/permission`). */
export const GITHUB_PERMISSIONS = ['read', 'triage', 'write', 'maintain', 'admin'] as const;
export type GitHubPermission = (typeof GITHUB_PERMISSIONS)[number];

export const githubTriggerSchema = z.strictObject({
  repository: z
    .string()
    .regex(
      /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/,
      'must be OWNER/REPO, the repository on GitHub (acme/app)',
    )
    .refine((r) => !r.endsWith('.git'), 'must be OWNER/REPO without .git'),
  allow: z.enum(GITHUB_PERMISSIONS).default('write'),
});

export type GitHubTrigger = z.output<typeof githubTriggerSchema>;

/** The key under which repositories are compared: GitHub compares names without case. */
export function githubRepositoryKey(repository: string): string {
  return repository.toLowerCase();
}

/**
 * The refusal of a second environment for one repository (`triggers.github.repository`), naming
 * the environment that serves it; undefined when none other does.
 */
export function githubTriggerTaken(
  spec: { name: string; triggers?: { github?: { repository: string } | undefined } | undefined },
  others: readonly {
    id: string;
    spec: { name: string; triggers?: { github?: { repository: string } | undefined } | undefined };
  }[],
  selfId?: string,
): { repository: string; environment: string } | undefined {
  const repository = spec.triggers?.github?.repository;
  if (repository === undefined) return undefined;
  const taken = others.find(
    (e) =>
      e.id !== selfId &&
      e.spec.name !== spec.name &&
      e.spec.triggers?.github?.repository !== undefined &&
      githubRepositoryKey(e.spec.triggers.github.repository) === githubRepositoryKey(repository),
  );
  return taken ? { repository, environment: taken.spec.name } : undefined;
}
