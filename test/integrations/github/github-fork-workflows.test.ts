import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { issueCommentPayload, openGitHubWorld, runGit, type GitHubWorld } from './github-world.js';

/**
 * Review 3 (finding 2): the change for a fork's pull request is pushed as `berth/<task-id>` of
 * the BASE repository, on top of the fork's commits; GitHub runs the base's `on: push`
 * workflows of that branch (the workflow files as the pushed commit has them) with the base's
 * secrets. So when the fork's own commits (merge base to the fork's head) or the agent's diff
 * touch `.github/` (workflows, local actions), nothing is pushed and the reply says why.
 */

let world: GitHubWorld;
beforeEach(async () => {
  world = await openGitHubWorld();
});
afterEach(async () => {
  await world.close();
});

function refs(bare: string): string {
  return runGit(bare, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads');
}

/** The fork's branch `feature` with `files` written (paths relative to the work tree). */
function forkPullRequest(files: Record<string, string>, remove: string[] = []): number {
  const work = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  try {
    execFileSync('git', ['clone', '-q', world.forkBare, work]);
    runGit(work, 'checkout', '-q', '-b', 'feature');
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(work, path, '..'), { recursive: true });
      writeFileSync(join(work, path), content);
    }
    for (const path of remove) runGit(work, 'rm', '-q', path);
    runGit(work, 'add', '-A');
    runGit(work, 'commit', '-qm', 'docs: fix README');
    runGit(work, 'push', '-q', 'origin', 'feature');
  } finally {
    execFileSync('rm', ['-rf', work]);
  }
  const number = world.fake.addPull({
    owner: 'acme',
    repo: 'app',
    head: 'feature',
    base: 'main',
    title: 'docs: fix README',
    headRepo: 'contrib/app',
  });
  // GitHub keeps a fork's head in the base repository as refs/pull/N/head.
  runGit(world.bare, 'fetch', '-q', world.forkBare, `feature:refs/pull/${number}/head`);
  return number;
}

const PWN =
  'on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo "${{ secrets.DEPLOY_KEY }}"\n';

describe("a fork's pull request whose commits or diff touch .github/", () => {
  for (const [what, files] of [
    ['adds a workflow', { '.github/workflows/pwn.yml': PWN, 'README.md': 'typo\n' }],
    [
      'changes a local action',
      { '.github/actions/setup/action.yml': 'runs: { using: node20, main: x.js }\n' },
    ],
    ['adds a file under .GitHub in another case', { '.GitHub/workflows/x.yml': PWN }],
  ] as const) {
    it(`the fork ${what}: nothing is pushed to the base repository, the reply says why`, async () => {
      const number = forkPullRequest(files);
      const before = refs(world.bare);
      const forkBefore = refs(world.forkBare);
      await world.deliver(
        'issue_comment',
        issueCommentPayload({ body: '@berth fix the typo in README', number, pull: true }),
      );
      expect(refs(world.bare)).toBe(before);
      expect(refs(world.forkBare)).toBe(forkBefore);
      expect(world.fake.pulls.filter((p) => p.head.startsWith('berth/'))).toEqual([]);
      const reply = world.fake.comments.at(-1)?.body ?? '';
      expect(reply).toContain("the fork's commits change .github/");
      expect(reply).toContain('nothing was pushed');
    });
  }

  it('the fork deletes a workflow: refused too (the pushed branch would run without it)', async () => {
    const seed = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
    try {
      execFileSync('git', ['clone', '-q', world.bare, seed]);
      mkdirSync(join(seed, '.github/workflows'), { recursive: true });
      writeFileSync(join(seed, '.github/workflows/ci.yml'), 'on: push\n');
      runGit(seed, 'add', '-A');
      runGit(seed, 'commit', '-qm', 'ci');
      runGit(seed, 'push', '-q', 'origin', 'main');
      runGit(seed, 'push', '-q', world.forkBare, 'main');
    } finally {
      execFileSync('rm', ['-rf', seed]);
    }
    const number = forkPullRequest({}, ['.github/workflows/ci.yml']);
    const before = refs(world.bare);
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix it', number, pull: true }),
    );
    expect(refs(world.bare)).toBe(before);
    expect(world.fake.comments.at(-1)?.body).toContain("the fork's commits change .github/");
  });

  it("the agent's diff on a fork's pull request touches .github/ (not only workflows): nothing is pushed", async () => {
    const number = forkPullRequest({ 'README.md': 'typo\n' });
    world.sandbox.agent = (dir) => {
      mkdirSync(join(dir, '.github'), { recursive: true });
      writeFileSync(join(dir, '.github', 'dependabot.yml'), 'version: 2\n');
      return 'Added dependabot.';
    };
    const before = refs(world.bare);
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth add dependabot', number, pull: true }),
    );
    expect(refs(world.bare)).toBe(before);
    const reply = world.fake.comments.at(-1)?.body ?? '';
    expect(reply).toContain('the change touches .github/');
    expect(reply).toContain('nothing was pushed');
  });

  it("GitHub cannot compare the fork's head with the base: nothing is pushed (it cannot be told)", async () => {
    const number = forkPullRequest({ 'README.md': 'typo\n' });
    // The pull request's base branch is not there (deleted meanwhile): the compare answers 404.
    world.fake.pulls.find((p) => p.number === number)!.base = 'gone';
    const before = refs(world.bare);
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix the typo', number, pull: true }),
    );
    expect(refs(world.bare)).toBe(before);
    expect(world.fake.comments.at(-1)?.body).toContain('cannot tell whether the fork');
  });

  it("a fork's pull request that leaves .github/ alone is still proposed into the fork's branch, and the reply says what was pushed where", async () => {
    const number = forkPullRequest({ 'README.md': 'typo\n' });
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix the typo', number, pull: true }),
    );
    const [task] = await world.store.listTasks({ limit: 1 });
    const opened = world.fake.pulls.find((p) => p.owner === 'contrib');
    expect(opened).toMatchObject({ head: `berth/${task!.id}`, base: 'feature' });
    const reply = world.fake.comments.at(-1)?.body ?? '';
    expect(reply).not.toContain('pushed nothing');
    expect(reply).toContain(`Berth pushed \`berth/${task!.id}\` to acme/app`);
  });
});
