/**
 * The repository's default branch: found from the repository (its HEAD) when the environment
 * does not name one, and a named one checked against the branches it has. No I/O here: the
 * answer of `git ls-remote --symref` is read by `parseRemoteHeads`, and what to store is decided
 * by `settleDefaultBranch`.
 */

/** What a repository says about its branches. */
export interface RemoteHeads {
  /** The branch HEAD points at (its default branch); undefined when it does not say. */
  head: string | undefined;
  /** Its branches, sorted. */
  branches: string[];
}

/** Reads `git ls-remote --symref -- URL HEAD 'refs/heads/*'`. */
export function parseRemoteHeads(output: string): RemoteHeads {
  let head: string | undefined;
  const branches: string[] = [];
  for (const line of output.split('\n')) {
    const symref = /^ref: refs\/heads\/(\S+)\tHEAD$/.exec(line);
    if (symref) head = symref[1];
    const branch = /^[0-9a-f]{40,64}\trefs\/heads\/(\S+)$/.exec(line);
    if (branch?.[1] !== undefined) branches.push(branch[1]);
  }
  branches.sort();
  // A HEAD naming a branch that does not exist (an empty repository's "main") names nothing.
  return { head: head !== undefined && branches.includes(head) ? head : undefined, branches };
}

/** Whether an environment as written names `repository.defaultBranch` (not the shorthand URL). */
export function namesDefaultBranch(written: unknown): boolean {
  if (written === null || typeof written !== 'object') return false;
  const repository = (written as { repository?: unknown }).repository;
  return (
    repository !== null &&
    typeof repository === 'object' &&
    (repository as { defaultBranch?: unknown }).defaultBranch !== undefined
  );
}

export type DefaultBranchDecision =
  { ok: true; branch: string; found: boolean } | { ok: false; message: string };

/**
 * The branch to store: the named one if the repository has it, else a refusal listing the
 * branches it has; without a name, the repository's HEAD (`found`), or `fallback` when the
 * repository has none to give (empty) or could not be asked (`heads` undefined).
 */
export function settleDefaultBranch(
  named: string | undefined,
  fallback: string,
  heads: RemoteHeads | undefined,
): DefaultBranchDecision {
  if (named !== undefined) {
    if (heads === undefined || heads.branches.length === 0 || heads.branches.includes(named)) {
      return { ok: true, branch: named, found: false };
    }
    const shown = heads.branches.slice(0, 20).join(', ');
    const more = heads.branches.length > 20 ? `, and ${heads.branches.length - 20} more` : '';
    return {
      ok: false,
      message: `the repository has no branch "${named}" (its branches: ${shown}${more}${heads.head !== undefined ? `; its default branch is "${heads.head}"` : ''})`,
    };
  }
  if (heads?.head !== undefined) return { ok: true, branch: heads.head, found: true };
  return { ok: true, branch: fallback, found: false };
}
