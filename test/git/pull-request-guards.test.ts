import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PullRequestService } from '../../src/services/pull-request-service.js';
import { FakeGitHub } from '../support/fake-github.js';
import {
  adderPullRequest,
  berthErrorOf,
  makeAdderRemote,
  type AdderRemote,
} from '../support/pull-request-support.js';
import { runGit } from '../support/run-git.js';

/**
 * What `berth task pr` refuses to push, on a real bare remote and the fake GitHub API (issue 21,
 * 1 and 9): a hand-made diff that would copy a file of the orchestrator's host into the commit,
 * a repository the server's token is not meant for (`BERTH_GITHUB_REPOSITORIES`), and workflow
 * files without `allowWorkflows`.
 */

let fake: FakeGitHub;
let bare: string;
let adder: AdderRemote;

function service(githubRepositories?: string[]): PullRequestService {
  return new PullRequestService({
    githubToken: 'ghs-good',
    githubApiUrl: fake.url,
    githubRemotes: { [bare]: 'acme/svc' },
    gitAuthor: { name: 'Berth', email: 'berth@localhost' },
    allowLocalRepositories: true,
    ...(githubRepositories ? { githubRepositories } : {}),
  });
}

function branches(): string {
  return runGit(bare, 'for-each-ref', '--format=%(refname)', 'refs/heads/berth/');
}

beforeAll(async () => {
  fake = new FakeGitHub({ token: 'ghs-good', repositories: {} });
  await fake.start();
});
afterAll(async () => {
  await fake.stop();
});
beforeEach(() => {
  bare = mkdtempSync(join(tmpdir(), 'berth-prg-bare-'));
  adder = makeAdderRemote(bare);
  (fake as unknown as { options: { repositories: Record<string, string> } }).options.repositories[
    'acme/svc'
  ] = bare;
  fake.requests.length = 0;
  fake.pulls.length = 0;
});

describe('pull request guards', () => {
  it('refuses a diff that copies a file of the host into the push, before cloning', async () => {
    // Stands for the orchestrator's own ssh key.
    const hostFile = join(mkdtempSync(join(tmpdir(), 'berth-prg-host-')), 'id_ed25519');
    writeFileSync(hostFile, 'HOST PRIVATE KEY\n');
    for (const from of [hostFile, '../../x', '.git/config']) {
      const diff = `${adder.diff}diff --git a/leak.txt b/leak.txt\nsimilarity index 100%\ncopy from ${from}\ncopy to leak.txt\n`;
      const error = await berthErrorOf(
        service().open(adderPullRequest(bare, adder, 'task_copy', { diff })),
      );
      expect(error.code).toBe('invalid_input');
      expect(error.message).toContain(`copy from ${from}`);
      expect(error.message).toContain('nothing was pushed');
    }
    const plusMismatch = adder.diff.replace('+++ b/add.sh', '+++ b/.git/hooks/pre-commit');
    const mismatch = await berthErrorOf(
      service().open(adderPullRequest(bare, adder, 'task_copy', { diff: plusMismatch })),
    );
    expect(mismatch.message).toContain('inside .git');
    expect(branches()).toBe('');
    expect(fake.requests).toHaveLength(0);
  });

  it('uses the server token only for the repositories BERTH_GITHUB_REPOSITORIES lists', async () => {
    const refused = await berthErrorOf(
      service(['acme/other', 'beta/*']).open(adderPullRequest(bare, adder, 'task_repo1')),
    );
    expect(refused.code).toBe('forbidden');
    expect(refused.message).toContain('BERTH_GITHUB_REPOSITORIES does not list it');
    expect(refused.message).toContain('acme/svc');
    expect(branches()).toBe('');
    expect(fake.requests).toHaveLength(0);

    for (const patterns of [['acme/*'], ['ACME/SVC'], ['*/svc'], []]) {
      const done = await service(patterns).open(
        adderPullRequest(bare, adder, `task_repo${patterns.length}${patterns[0]?.length ?? 0}`),
      );
      expect(done.pullRequest?.created).toBe(true);
    }
  });

  it('the environment’s own credentials are not limited by BERTH_GITHUB_REPOSITORIES', async () => {
    fake.token = 'env-token';
    try {
      const done = await service(['beta/*']).open(
        adderPullRequest(bare, adder, 'task_envcred', {
          credentials: { username: 'x-access-token', password: 'env-token' },
        }),
      );
      expect(done.pullRequest?.created).toBe(true);
    } finally {
      fake.token = 'ghs-good';
    }
  });

  it('a diff that adds or changes .github/workflows/ needs allowWorkflows', async () => {
    // The same fix plus a workflow file, made against this test's remote.
    const work = mkdtempSync(join(tmpdir(), 'berth-prg-work-'));
    runGit(work, 'clone', '-q', bare, '.');
    writeFileSync(join(work, 'add.sh'), 'add() { echo $(( $1 + $2 )); }\n');
    const wf = join(work, '.github', 'workflows');
    mkdirSync(wf, { recursive: true });
    writeFileSync(join(wf, 'ci.yml'), 'on: push\njobs: {}\n');
    runGit(work, 'add', '-A');
    const diff = `${runGit(work, 'diff', '--cached', '--binary', adder.base)}\n`;

    const refused = await berthErrorOf(
      service().open(adderPullRequest(bare, adder, 'task_wf', { diff })),
    );
    expect(refused.code).toBe('invalid_input');
    expect(refused.message).toContain('.github/workflows/ci.yml');
    expect(refused.message).toContain('--allow-workflows');
    expect(refused.message).toContain('nothing was pushed');
    expect(branches()).toBe('');

    const pushed = await service().open(
      adderPullRequest(bare, adder, 'task_wf', { diff, allowWorkflows: true }),
    );
    expect(runGit(bare, 'show', `${pushed.commit}:.github/workflows/ci.yml`)).toContain('on: push');
  });

  it('.github/workflows itself as a symlink or a gitlink needs allowWorkflows too', async () => {
    const work = mkdtempSync(join(tmpdir(), 'berth-prg-wfl-'));
    runGit(work, 'clone', '-q', bare, '.');
    mkdirSync(join(work, 'ci'));
    writeFileSync(join(work, 'ci', 'deploy.yml'), 'on: push\njobs: {}\n');
    mkdirSync(join(work, '.github'));
    symlinkSync('../ci', join(work, '.github', 'workflows'));
    runGit(work, 'add', '-A');
    const linked = `${runGit(work, 'diff', '--cached', '--binary', adder.base)}\n`;
    const refused = await berthErrorOf(
      service().open(adderPullRequest(bare, adder, 'task_wfl', { diff: linked })),
    );
    expect(refused.message).toContain('.github/workflows');
    expect(refused.message).toContain('--allow-workflows');

    const sub = mkdtempSync(join(tmpdir(), 'berth-prg-gitlink-'));
    runGit(sub, 'clone', '-q', bare, '.');
    runGit(sub, 'update-index', '--add', '--cacheinfo', `160000,${adder.base},.GitHub/workflows`);
    const gitlink = `${runGit(sub, 'diff', '--cached', '--binary', adder.base)}\n`;
    expect(gitlink).toContain('new file mode 160000');
    const refusedLink = await berthErrorOf(
      service().open(adderPullRequest(bare, adder, 'task_wfg', { diff: gitlink })),
    );
    expect(refusedLink.message).toContain('.GitHub/workflows');
    expect(branches()).toBe('');
  });

  it('never sends the server token over plain HTTP', async () => {
    const location = 'http://127.0.0.1:9/acme/svc.git';
    const plain = new PullRequestService({
      githubToken: 'ghs-good',
      githubApiUrl: fake.url,
      githubRemotes: { [location]: 'acme/svc' },
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: true,
    });
    const refused = await berthErrorOf(plain.open(adderPullRequest(location, adder, 'task_http')));
    expect(refused.code).toBe('invalid_input');
    expect(refused.message).toContain('only over HTTPS');
    expect(fake.requests).toHaveLength(0);
  });
});
