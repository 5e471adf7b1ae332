import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import {
  PullRequestService,
  type OpenPullRequestInput,
  type PullRequestSettings,
} from '../../src/services/pull-request-service.js';
import { runGit } from './run-git.js';

/**
 * The pull request tests' repository: an adder that subtracts, and the task's diff that fixes it.
 */
export interface AdderRemote {
  /** The commit on `main` the diff applies to. */
  base: string;
  /** The fix (`$1 - $2` becomes `$1 + $2` in add.sh), plus `extraFiles`, as a binary diff. */
  diff: string;
}

/**
 * Makes the bare repository `bare` (its `main` at the adder that subtracts) and returns the fix as
 * a diff, with `extraFiles` (name → content) added by it too.
 */
export function makeAdderRemote(
  bare: string,
  extraFiles: Record<string, string> = {},
): AdderRemote {
  const work = mkdtempSync(join(tmpdir(), 'berth-pr-work-'));
  try {
    runGit(work, 'init', '-q', '-b', 'main');
    writeFileSync(join(work, 'add.sh'), 'add() { echo $(( $1 - $2 )); }\n');
    runGit(work, 'add', '-A');
    runGit(work, 'commit', '-qm', 'initial');
    const base = runGit(work, 'rev-parse', 'HEAD');
    execFileSync('git', ['clone', '-q', '--bare', work, bare]);
    writeFileSync(join(work, 'add.sh'), 'add() { echo $(( $1 + $2 )); }\n');
    for (const [name, content] of Object.entries(extraFiles))
      writeFileSync(join(work, name), content);
    runGit(work, 'add', '-A');
    const diff = execFileSync('git', ['-C', work, 'diff', '--cached', '--binary', base], {
      encoding: 'utf8',
    });
    return { base, diff };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The pull request of task `taskId` that brings `remote`'s fix into `main` of `repository`. */
export function adderPullRequest(
  repository: string,
  remote: AdderRemote,
  taskId: string,
  extra: Partial<OpenPullRequestInput> = {},
): OpenPullRequestInput {
  return {
    taskId,
    repository,
    base: 'main',
    baseCommit: remote.base,
    diff: remote.diff,
    commitMessage: 'Fix the adder',
    title: 'Fix the adder',
    body: 'I fixed the adder.',
    draft: false,
    ...extra,
  };
}

/** The error `p` rejects with, which must be a `BerthError` (the test fails if `p` resolves). */
export async function berthErrorOf(p: Promise<unknown>): Promise<BerthError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BerthError);
  return error as BerthError;
}

/**
 * The pull request of the address tests (the service refuses the remote's address, or finds no
 * repository there): one new file on a made-up base commit, with `credentials`.
 */
export function addressTestPullRequest(
  taskId: string,
  repository: string,
  credentials: { username: string; password: string },
): OpenPullRequestInput {
  return {
    taskId,
    repository,
    base: 'main',
    baseCommit: '0'.repeat(40),
    diff: 'diff --git a/PR.txt b/PR.txt\nnew file mode 100644\n--- /dev/null\n+++ b/PR.txt\n@@ -0,0 +1 @@\n+x\n',
    commitMessage: 'm',
    title: 't',
    body: 'b',
    draft: false,
    credentials,
  };
}

/**
 * The pull request service of the address tests: no GitHub API, local repositories refused,
 * `allow` the operator's BERTH_SETUP_ALLOW ranges (none: public addresses only).
 */
export function addressTestService(
  allow?: string[],
  extra: Partial<PullRequestSettings> = {},
): PullRequestService {
  return new PullRequestService({
    githubApiUrl: 'http://127.0.0.1:9/unused',
    githubRemotes: {},
    gitAuthor: { name: 'Berth', email: 'berth@localhost' },
    allowLocalRepositories: false,
    ...extra,
    ...(allow ? { addressPolicy: { allow } } : {}),
  });
}
