import type { Octokit } from '@octokit/rest';
import { diffPaths, readDiffHeadersAsync } from '../../git/diff-headers.js';

/**
 * Whether a fork's pull request may be delivered at all: the change for it is pushed as
 * `berth/<task-id>` of the BASE repository, on top of the fork's commits, and GitHub runs the
 * base's `on: push` workflows for that branch, as the pushed commit has them, with the base's
 * secrets.
 *
 * Threat model: the fork's author writes the fork's commits and, through the pull request's text,
 * steers the agent; both are hostile. Whatever they put under `.github/` (a workflow, a local
 * action a workflow `uses: ./.github/…`, the removal of a check) would run in the base
 * repository with its secrets the moment Berth pushes. So nothing is pushed when the fork's own
 * commits (merge base to the fork's head, as GitHub's compare reports them) or the agent's diff
 * touch `.github/` (any case, and `.github` itself: a symlink or gitlink brings files with it).
 * When GitHub cannot say (an error, or the 300 files its compare lists at most), nothing is
 * pushed either. What this does not cover: a push workflow of the base that runs other files the
 * fork changed (`npm test` reads package.json); docs/github.md tells the operator to keep
 * `berth/**` out of push workflows that use secrets.
 */

const GITHUB_DIRECTORY = /^\.github(?:$|\/)/i;

/** GitHub's compare lists at most this many files: a longer list cannot be checked. */
const COMPARE_FILES_MAX = 300;

/** The paths under `.github/` among `paths` (any case). */
export function githubPaths(paths: Iterable<string>): string[] {
  return [...paths].filter((p) => GITHUB_DIRECTORY.test(p));
}

/**
 * Why the agent's diff may not be pushed for a fork's pull request (the `.github/` paths it
 * changes, or that it could not be read: diff-headers.ts), or undefined.
 */
export async function forkDiffRefusal(diff: string): Promise<string | undefined> {
  let paths: string[];
  try {
    paths = diffPaths(await readDiffHeadersAsync(diff));
  } catch {
    return 'the change is not shaped like a Berth diff, so Berth cannot tell whether it touches .github/';
  }
  const touched = githubPaths(paths);
  if (touched.length === 0) return undefined;
  return `the change touches .github/ (${touched.slice(0, 5).join(', ')})`;
}

/**
 * Why the fork's commits may not be pushed to the base repository (`.github/` paths they
 * change, or why that could not be told), or undefined when they leave `.github/` alone.
 */
export async function forkCommitsRefusal(
  octokit: Octokit,
  repository: { owner: string; repo: string },
  base: string,
  sha: string,
): Promise<string | undefined> {
  let files: { filename: string; previous_filename?: string | undefined }[];
  try {
    const compared = await octokit.rest.repos.compareCommitsWithBasehead({
      ...repository,
      basehead: `${base}...${sha}`,
    });
    files = compared.data.files ?? [];
  } catch {
    return `GitHub could not compare ${base} with the fork's head ${sha.slice(0, 12)}, so Berth cannot tell whether the fork's commits change .github/`;
  }
  if (files.length >= COMPARE_FILES_MAX)
    return `the fork's commits change ${COMPARE_FILES_MAX} files or more, more than GitHub lists, so Berth cannot tell whether they change .github/`;
  const touched = githubPaths(
    files.flatMap((f) => [f.filename, ...(f.previous_filename ? [f.previous_filename] : [])]),
  );
  if (touched.length === 0) return undefined;
  return `the fork's commits change .github/ (${touched.slice(0, 5).join(', ')})`;
}
