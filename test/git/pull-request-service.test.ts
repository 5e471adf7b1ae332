import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseGitHubRemote } from '../../src/git/github-remote.js';
import {
  PullRequestService,
  type OpenPullRequestInput,
} from '../../src/services/pull-request-service.js';
import { FakeGitHub } from '../support/fake-github.js';
import {
  adderPullRequest,
  berthErrorOf,
  makeAdderRemote,
  type AdderRemote,
} from '../support/pull-request-support.js';
import { runGit } from '../support/run-git.js';

/**
 * The pull request service on real git repositories (a local bare remote) and the fake GitHub
 * API: push, open, re-run (same branch, same PR updated), and each failure saying what was done.
 */

let fake: FakeGitHub;
let bare: string;
let adder: AdderRemote;

function service(
  token = 'ghs-good',
  remotes: Record<string, string> = { [bare]: 'acme/svc' },
): PullRequestService {
  return new PullRequestService({
    githubToken: token,
    githubApiUrl: fake.url,
    githubRemotes: remotes,
    gitAuthor: { name: 'Berth', email: 'berth@localhost' },
    allowLocalRepositories: true,
  });
}

function input(taskId: string, extra: Partial<OpenPullRequestInput> = {}): OpenPullRequestInput {
  return adderPullRequest(bare, adder, taskId, extra);
}

beforeAll(async () => {
  fake = new FakeGitHub({ token: 'ghs-good', repositories: {} });
  await fake.start();
});
afterAll(async () => {
  await fake.stop();
});

beforeEach(() => {
  bare = mkdtempSync(join(tmpdir(), 'berth-pr-bare-'));
  adder = makeAdderRemote(bare, { 'NOTES.md': 'fixed\n' });
  (fake as unknown as { options: { repositories: Record<string, string> } }).options.repositories[
    'acme/svc'
  ] = bare;
  fake.token = 'ghs-good';
  fake.requests.length = 0;
  fake.pulls.length = 0;
});

describe('PullRequestService', () => {
  it('pushes berth/<task> and opens a PR; run again it updates the same branch and PR', async () => {
    const first = await service().open(input('task_pr1'));
    expect(first.branch).toBe('berth/task_pr1');
    expect(first.pullRequest).toEqual({
      number: 1,
      url: 'https://github.example/acme/svc/pull/1',
      created: true,
    });
    expect(runGit(bare, 'rev-parse', 'refs/heads/berth/task_pr1')).toBe(first.commit);
    expect(runGit(bare, 'log', '-1', '--format=%an <%ae>|%s|%P', first.commit)).toBe(
      `Berth <berth@localhost>|Fix the adder|${adder.base}`,
    );
    expect(runGit(bare, 'show', `${first.commit}:add.sh`)).toContain('$1 + $2');

    const create = fake.requests.find((r) => r.method === 'POST');
    expect(create?.path).toBe('/repos/acme/svc/pulls');
    expect(create?.headers.accept).toBe('application/vnd.github+json');
    expect(create?.headers['x-github-api-version']).toBe('2022-11-28');
    expect(create?.body).toEqual({
      title: 'Fix the adder',
      body: 'I fixed the adder.',
      head: 'berth/task_pr1',
      base: 'main',
      draft: false,
    });

    const second = await service().open(
      input('task_pr1', {
        title: 'Fix the adder, again',
        body: 'Better.',
        commitMessage: 'Fix the adder properly',
      }),
    );
    expect(second.pullRequest).toEqual({
      number: 1,
      url: 'https://github.example/acme/svc/pull/1',
      created: false,
    });
    expect(second.commit).not.toBe(first.commit);
    expect(runGit(bare, 'rev-parse', 'refs/heads/berth/task_pr1')).toBe(second.commit);
    expect(fake.pulls).toHaveLength(1);
    expect(fake.pulls[0]).toMatchObject({ title: 'Fix the adder, again', body: 'Better.' });
    const lookup = fake.requests.filter((r) => r.method === 'GET').at(-1);
    expect(lookup?.path).toBe(
      '/repos/acme/svc/pulls?head=acme%3Aberth%2Ftask_pr1&state=open&per_page=1',
    );
    expect(
      fake.requests.some((r) => r.method === 'PATCH' && r.path === '/repos/acme/svc/pulls/1'),
    ).toBe(true);
  });

  it('a remote that is not on GitHub gets the branch only', async () => {
    const outcome = await service('ghs-good', {}).open(input('task_plain'));
    expect(outcome.pullRequest).toBeNull();
    expect(runGit(bare, 'rev-parse', 'refs/heads/berth/task_plain')).toBe(outcome.commit);
    expect(fake.requests).toHaveLength(0);
  });

  it('401 and 422 say the branch was pushed and why the PR was not opened', async () => {
    const unauthorized = await berthErrorOf(service('ghs-wrong').open(input('task_401')));
    expect(unauthorized.code).toBe('remote_error');
    expect(unauthorized.message).toBe(
      `the branch berth/task_401 was pushed to ${bare}; the pull request was not opened: GitHub answered 401: Bad credentials`,
    );
    expect(runGit(bare, 'rev-parse', '--verify', 'refs/heads/berth/task_401')).toMatch(
      /^[0-9a-f]{40}$/,
    );

    const badBase = await berthErrorOf(
      service().open(input('task_422', { base: 'no-such-branch' })),
    );
    expect(badBase.message).toBe(
      `the branch berth/task_422 was pushed to ${bare}; the pull request was not opened: GitHub answered 422: Validation Failed (PullRequest base invalid)`,
    );
  });

  it('a refused push leaves nothing behind and says so; a diff that does not apply pushes nothing', async () => {
    const hook = join(bare, 'hooks', 'pre-receive');
    writeFileSync(hook, '#!/bin/sh\necho "pushes to berth/* need a review" >&2\nexit 1\n');
    chmodSync(hook, 0o755);
    const refused = await berthErrorOf(service().open(input('task_refused')));
    expect(refused.code).toBe('remote_error');
    expect(refused.message).toContain(`the remote ${bare} refused the push of berth/task_refused`);
    expect(refused.message).toContain('pushes to berth/* need a review');
    expect(refused.message).toContain('nothing was pushed');
    expect(fake.requests).toHaveLength(0);
    rmSync(hook);

    const broken = await berthErrorOf(
      service().open(input('task_broken', { diff: adder.diff.replace('$1 - $2', '$1 * $2') })),
    );
    expect(broken.code).toBe('conflict');
    expect(broken.message).toContain('nothing was pushed');
    expect(runGit(bare, 'for-each-ref', 'refs/heads/berth/')).toBe('');
  });

  it('knows GitHub remotes by URL, by Enterprise host and by configuration', () => {
    const settings = {
      apiUrl: 'https://github.acme.example/api/v3',
      remotes: { '/srv/git/svc.git': 'acme/svc' },
    };
    expect(parseGitHubRemote('https://github.com/acme/svc.git', settings)).toEqual({
      owner: 'acme',
      repo: 'svc',
    });
    expect(parseGitHubRemote('git@github.com:acme/svc.git', settings)).toEqual({
      owner: 'acme',
      repo: 'svc',
    });
    expect(parseGitHubRemote('https://github.acme.example/team/app', settings)).toEqual({
      owner: 'team',
      repo: 'app',
    });
    expect(parseGitHubRemote('/srv/git/svc.git', settings)).toEqual({ owner: 'acme', repo: 'svc' });
    expect(parseGitHubRemote('https://gitlab.example/acme/svc.git', settings)).toBeUndefined();
    expect(parseGitHubRemote('https://github.com/acme', settings)).toBeUndefined();
  });
});
