import { lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../errors/berth-error.js';
import {
  diffPathBytes,
  diffPaths,
  plantedMessage,
  readDiffHeaders,
  type DiffHeaders,
} from './diff-headers.js';
import { plantedRepository } from './embedded-repository.js';
import { runGit, type GitResult } from './run-git.js';

/**
 * Refuses a diff whose paths would make a directory of `root` (a checkout or a clone) look like a
 * git repository, counting what is there already (embedded-repository.ts decides the shape).
 * `consequence` ends the message ("nothing was changed", "nothing was pushed").
 */
export function refusePlantedRepository(
  paths: readonly string[],
  root: string,
  consequence: string,
): void {
  const planted = plantedRepository(paths, (path) => {
    try {
      lstatSync(join(root, path));
      return true;
    } catch {
      return false;
    }
  });
  if (planted !== undefined)
    throw new BerthError(
      'invalid_input',
      `the diff was refused (${plantedMessage(planted)}); ${consequence}`,
    );
}

/**
 * Applies an attempt's diff to a git checkout on the user's machine (`berth task apply`).
 *
 * Threat model: the diff came out of a sandbox and is hand-made as far as this machine is
 * concerned (see diff-headers.ts); the person's files outside the checkout, and the checkout's
 * `.git`, must stay as they are. Nothing is changed on any refusal: a diff that is not shaped like
 * Berth's (copy or rename headers, a path outside the tree or inside `.git`, ...: refused before
 * any git runs), outside a git checkout, on a checkout of another repository (the attempt's base
 * commit is not there), or on a conflict. The order:
 *   0. the headers (diff-headers.ts), then git's own reading of them (`git apply --summary` and
 *      `--numstat`: no copy or rename, and exactly the paths the headers name);
 *   1. `git apply --check`: the diff applies as it is → `git apply` (working tree only);
 *   2. else `git apply --reverse --check`: the change is in the working tree already → nothing
 *      is done, and the caller says "already applied" (not a conflict);
 *   3. else `git apply --3way --check`: the blobs the diff records let git merge → when no file
 *      would be left with conflicts, `git apply --3way` (the result is staged, as git does);
 *   4. else refuse, naming the files that do not apply.
 * Also refused before git writes: paths that make a directory of the checkout look like a git
 * repository with what is there already (embedded-repository.ts), and paths the checkout ignores
 * and does not track (`git check-ignore`: git status would never show them; asked again after a
 * clean apply, since the diff may change a .gitignore: then the apply is taken back). Paths are
 * compared as bytes (git's `-z` output read as latin1), never decoded.
 * Never `--unsafe-paths`. Afterwards `git status` must differ from before only in the paths the
 * diff names (a file outside them that changed is reported; ignored files are not compared).
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
  /** `already-applied`: the checkout has the change already (nothing was changed). */
  mode: 'clean' | 'three-way' | 'already-applied';
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

/** A path read as bytes (latin1), shown as UTF-8. */
export function shownPath(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/**
 * `git status` of the checkout: path (as bytes: `git` must read stdout as latin1) → its two
 * status letters (untracked files included).
 */
async function statusOf(git: (args: string[]) => Promise<GitResult>): Promise<Map<string, string>> {
  const result = await git([
    'status',
    '--porcelain=v1',
    '-z',
    '--untracked-files=all',
    '--no-renames',
  ]);
  if (result.code !== 0)
    throw new BerthError('internal', `git status failed: ${result.stderr.trim()}`);
  const out = new Map<string, string>();
  for (const record of result.stdout.split('\0')) {
    if (record.length > 3) out.set(record.slice(3), record.slice(0, 2));
  }
  return out;
}

/**
 * git's own reading of the patch file: refused when git sees a copy or rename, or a path the
 * headers did not name (a parser difference between this module and git). `named` holds the
 * paths as bytes (diffPathBytes) and `git` must read stdout as latin1, so paths are compared as
 * git has them, never decoded.
 */
export async function checkGitReading(
  git: (args: string[]) => Promise<GitResult>,
  patch: string,
  named: ReadonlySet<string>,
  nothingDone = 'nothing was changed',
): Promise<void> {
  const summary = await git(['apply', '--summary', '--', patch]);
  const moved = summary.stdout.split('\n').find((l) => /^ (?:copy|rename) /.test(l));
  if (summary.code !== 0 || moved !== undefined) {
    throw new BerthError(
      'invalid_input',
      `the diff was refused: git reads ${moved !== undefined ? `a copy or rename in it (${JSON.stringify(moved.trim().slice(0, 200))})` : `it differently (${summary.stderr.trim().slice(0, 200)})`}; ${nothingDone}`,
    );
  }
  const numstat = await git(['apply', '--numstat', '-z', '--', patch]);
  const seen = numstat.stdout
    .split('\0')
    .filter((r) => r !== '')
    .map((r) => r.replace(/^[-\d]+\t[-\d]+\t/, ''));
  const foreign = seen.filter((p) => !named.has(p));
  if (numstat.code !== 0 || foreign.length > 0 || seen.length !== named.size) {
    throw new BerthError(
      'invalid_input',
      `the diff was refused: git reads other paths in it than its headers name (${foreign
        .slice(0, 5)
        .map((p) => JSON.stringify(shownPath(p).slice(0, 200)))
        .join(', ')}); ${nothingDone}`,
    );
  }
}

/**
 * Refuses a diff touching a path the checkout ignores (and does not track): Berth's diffs come
 * from `git add -A`, which never adds one, and git status and git diff never show one, so an
 * executable written to `node_modules/.bin/jest` would go unseen. `git` reads stdout as latin1.
 */
async function refuseIgnored(
  git: (args: string[], stdin?: Buffer) => Promise<GitResult>,
  named: ReadonlySet<string>,
  refused: string,
  nothingDone: string,
): Promise<void> {
  const checked = await git(
    ['check-ignore', '-z', '--stdin'],
    Buffer.from([...named].join('\0') + '\0', 'latin1'),
  );
  // git refuses a path below a symlink of the checkout here already (as git apply would).
  if (checked.code > 1)
    throw new BerthError(
      'invalid_input',
      `${refused}: git check-ignore refused its paths (${checked.stderr.trim().slice(0, 300)}); ${nothingDone}`,
    );
  const ignored = checked.stdout
    .split('\0')
    .filter((p) => p !== '')
    .map(shownPath);
  if (ignored.length > 0) {
    throw new BerthError(
      'invalid_input',
      `${refused}: it writes ${ignored
        .slice(0, 5)
        .map((p) => JSON.stringify(p.slice(0, 200)))
        .join(
          ', ',
        )}, which this checkout ignores (git status and git diff would not show it; Berth's diffs never hold ignored files); ${nothingDone}`,
      { ignored: ignored.slice(0, 100) },
    );
  }
}

export async function applyDiff(input: ApplyDiffInput): Promise<ApplyDiffOutcome> {
  const signal = input.signal;
  if (isCutDiff(input.diff)) {
    throw new BerthError(
      'invalid_input',
      'the diff was cut at its size limit, so it cannot be applied whole; nothing was changed',
    );
  }
  // Before any git runs: a diff that is not shaped like Berth's is refused as a whole.
  let headers: DiffHeaders;
  try {
    headers = readDiffHeaders(input.diff);
  } catch (error) {
    if (!(error instanceof BerthError)) throw error;
    throw new BerthError('invalid_input', `${error.message}; nothing was changed`, error.details);
  }
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
  /** The same, stdout read as bytes (paths compared as git has them). */
  const gitBytes = (args: string[], stdin?: Buffer) =>
    runGit(args, {
      cwd: root,
      encoding: 'latin1',
      ...(stdin ? { input: stdin } : {}),
      ...(signal ? { signal } : {}),
    });
  const named = new Set(diffPathBytes(headers));
  refusePlantedRepository(diffPaths(headers), root, 'nothing was changed');
  await refuseIgnored(gitBytes, named, 'the diff was refused', 'nothing was changed');
  if (!/^[0-9a-f]{40,64}$/.test(input.baseCommit)) {
    throw new BerthError(
      'invalid_input',
      `the attempt's base commit "${input.baseCommit}" is not a commit id`,
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
    await checkGitReading(gitBytes, patch, named);
    const before = await statusOf(gitBytes);
    /** Only the paths the diff names may have changed (a last check, after git wrote). */
    const verify = async () => {
      const after = await statusOf(gitBytes);
      const changed = [...new Set([...before.keys(), ...after.keys()])]
        .filter((p) => before.get(p) !== after.get(p) && !named.has(p))
        .map(shownPath);
      if (changed.length > 0) {
        throw new BerthError(
          'internal',
          `git apply changed files the diff does not name: ${changed.slice(0, 10).join(', ')}; check the working tree`,
          { files: changed.slice(0, 100), root },
        );
      }
    };
    const plain = await git(['apply', '--check', '--', patch]);
    if (plain.code === 0) {
      const applied = await git(['apply', '--', patch]);
      if (applied.code !== 0)
        throw new BerthError(
          'conflict',
          `git apply failed: ${applied.stderr.trim().slice(0, 2000)}`,
        );
      // A .gitignore the diff changed may hide a file it added: taken back, and refused.
      try {
        await refuseIgnored(gitBytes, named, 'the diff was refused', 'it was taken back');
      } catch (error) {
        const undone = await git(['apply', '--reverse', '--', patch]);
        if (undone.code !== 0)
          throw new BerthError(
            'internal',
            `${(error as Error).message}, but taking it back failed (${undone.stderr.trim().slice(0, 500)}); check the working tree`,
          );
        throw error;
      }
      await verify();
      return { root, mode: 'clean' };
    }
    // The change is there already (applied before): said so, rather than a conflict.
    const reverse = await git(['apply', '--reverse', '--check', '--', patch]);
    if (reverse.code === 0) return { root, mode: 'already-applied' };
    const threeWay = await git(['apply', '--3way', '--check', '--', patch]);
    const conflicted = filesInApplyErrors(threeWay.stderr).filter((f) =>
      threeWay.stderr.includes(`Applied patch to '${f}' with conflicts.`),
    );
    if (threeWay.code === 0 && conflicted.length === 0) {
      const applied = await git(['apply', '--3way', '--', patch]);
      if (applied.code !== 0)
        throw new BerthError(
          'conflict',
          `git apply --3way failed: ${applied.stderr.trim().slice(0, 2000)}`,
        );
      await verify();
      return { root, mode: 'three-way' };
    }
    const files = (
      conflicted.length > 0 ? conflicted : filesInApplyErrors(threeWay.stderr + '\n' + plain.stderr)
    ).slice(0, 50);
    throw new BerthError(
      'conflict',
      `the diff conflicts with this checkout in ${files.length > 0 ? files.map((f) => f.slice(0, 300)).join(', ') : 'some files'}; nothing was changed`,
      { files, root },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
