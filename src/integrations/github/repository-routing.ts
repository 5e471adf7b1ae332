import { githubRepositoryKey } from '../../domain/environment/github-trigger.js';
import type { Store, StoredEnvironment } from '../../ports/store.js';

/**
 * Which environment serves a GitHub repository: the one whose `triggers.github.repository` names
 * it (without case, as GitHub compares names). The environment service keeps it to one per
 * repository; `env=NAME` in a comment may only name that same environment's peers that also name
 * this repository, so a comment never reaches an environment (and its secrets) made for another.
 */

export type Route = { ok: true; environment: StoredEnvironment } | { ok: false; reason: string };

export function servesRepository(environment: StoredEnvironment, repository: string): boolean {
  const named = environment.spec.triggers?.github?.repository;
  return named !== undefined && githubRepositoryKey(named) === githubRepositoryKey(repository);
}

export async function routeRepository(
  store: Pick<Store, 'listEnvironments'>,
  repository: string,
  requested?: string,
): Promise<Route> {
  const serving = (await store.listEnvironments()).filter((e) => servesRepository(e, repository));
  const setting = `triggers: { github: { repository: ${repository} } }`;
  if (serving.length === 0)
    return {
      ok: false,
      reason: `no Berth environment serves ${repository}: add \`${setting}\` to the environment that should (docs/github.md)`,
    };
  if (requested !== undefined) {
    const named = serving.find((e) => e.spec.name === requested);
    if (!named)
      return {
        ok: false,
        reason: `env=${requested}: that environment does not serve ${repository} (it needs \`${setting}\`)`,
      };
    return { ok: true, environment: named };
  }
  // The service keeps one per repository; should two exist (written before the check), the
  // oldest serves and the others are named in nothing.
  const first = [...serving].sort((a, b) => a.createdAt.localeCompare(b.createdAt))[0]!;
  return { ok: true, environment: first };
}
