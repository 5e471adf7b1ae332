import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../errors/berth-error.js';
import { runGit } from './run-git.js';

/**
 * Applies an attempt's diff to a git checkout on the user's machine (`berth task apply`).
 *
 * Nothing is changed on any refusal: outside a git checkout, on a checkout of another repository
 * (the attempt's base commit is not there), or on a conflict. The order:
 *   1. `git apply --check`: the diff applies as it is → `git apply` (working tree only);
 *   2. else `git apply --3way --check`: the blobs the diff records let git merge → when no file
 *      would be left with conflicts, `git apply --3way` (the result is staged, as git does);
 *   3. else refuse, naming the files that do not apply.
 * git runs from the checkout's top level (a subdirectory would silently skip paths outside it),
 * with an argument vector; the diff goes through a temporary file outside the checkout.
 */

export interface ApplyDiffInput {
  /** Where the command runs (any directory inside the checkout). */
  cwd: string;
  diff: string;
  baseCommit: string;
  signal?: AbortSignal;
}

export interface ApplyDiffOutcome {
  /** The checkout's top level. */
  root: string;
  mode: 'clean' | 'three-way';
}

const FILE_ERRORS = [
  /^error: patch failed: (.+):\d+$/,
  /^error: (.+): (?:patch does not apply|already exists in (?:working directory|index)|does not exist in index|does not match index|No such file or directory)$/,
  /^Applied patch to '(.+)' with conflicts\.$/,
  /^U (.+)$/,
];

/** Files named in git apply's complaints, in order, once each. */
export function filesInApplyErrors(stderr: string): string[] {
  const files = new Set<string>();
  for (const line of stderr.split('\n')) {
    for (const pattern of FILE_ERRORS) {
      const match = pattern.exec(line.trim());
      if (match?.[1]) {
        files.add(match[1]);
        break;
      }
    }
  }
  return [...files];
}

/** Whether results.ts cut this diff at its size limit (its last line says so). */
export function isCutDiff(diff: string): boolean {
  return /\n\[berth: diff cut at \d+ bytes of \d+\]\n?$/.test(diff);
}

export async function applyDiff(input: ApplyDiffInput): Promise<ApplyDiffOutcome> {
  const signal = input.signal;
  const inside = await runGit(['rev-parse', '--show-toplevel'], {
    cwd: input.cwd,
    ...(signal ? { signal } : {}),
  });
  if (inside.code !== 0 || inside.stdout.trim() === '') {
    throw new BerthError(
      'invalid_input',
      `${input.cwd} is not inside a git checkout; run berth task apply in a clone of the repository`,
      {
        cwd: input.cwd,
      },
    );
  }
  const root = inside.stdout.trim();
  const git = (args: string[]) => runGit(args, { cwd: root, ...(signal ? { signal } : {}) });
  if (!/^[0-9a-f]{40,64}$/.test(input.baseCommit)) {
    throw new BerthError(
      'invalid_input',
      `the attempt's base commit "${input.baseCommit}" is not a commit id`,
    );
  }
  if (isCutDiff(input.diff)) {
    throw new BerthError(
      'invalid_input',
      'the diff was cut at its size limit, so it cannot be applied whole; nothing was changed',
    );
  }
  const base = await git(['cat-file', '-e', `${input.baseCommit}^{commit}`]);
  if (base.code !== 0) {
    throw new BerthError(
      'invalid_input',
      `this checkout (${root}) does not have commit ${input.baseCommit.slice(0, 12)}, which the attempt started from: ` +
        'it is another repository, or needs a `git fetch` first. Nothing was changed.',
      { root, baseCommit: input.baseCommit },
    );
  }

  const dir = mkdtempSync(join(tmpdir(), 'berth-apply-'));
  const patch = join(dir, 'attempt.diff');
  try {
    writeFileSync(patch, input.diff);
    const plain = await git(['apply', '--check', '--', patch]);
    if (plain.code === 0) {
      const applied = await git(['apply', '--', patch]);
      if (applied.code !== 0)
        throw new BerthError('conflict', `git apply failed: ${applied.stderr.trim()}`);
      return { root, mode: 'clean' };
    }
    const threeWay = await git(['apply', '--3way', '--check', '--', patch]);
    const conflicted = filesInApplyErrors(threeWay.stderr).filter((f) =>
      threeWay.stderr.includes(`Applied patch to '${f}' with conflicts.`),
    );
    if (threeWay.code === 0 && conflicted.length === 0) {
      const applied = await git(['apply', '--3way', '--', patch]);
      if (applied.code !== 0)
        throw new BerthError('conflict', `git apply --3way failed: ${applied.stderr.trim()}`);
      return { root, mode: 'three-way' };
    }
    const files =
      conflicted.length > 0
        ? conflicted
        : filesInApplyErrors(threeWay.stderr + '\n' + plain.stderr);
    throw new BerthError(
      'conflict',
      `the diff conflicts with this checkout in ${files.length > 0 ? files.join(', ') : 'some files'}; nothing was changed`,
      { files, root },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
