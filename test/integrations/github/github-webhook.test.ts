import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ACME_APP,
  issueCommentPayload,
  openGitHubWorld,
  reviewCommentPayload,
  runGit,
  SECRET_VALUE,
  type GitHubWorld,
} from './github-world.js';

/**
 * The GitHub integration end to end without Docker (github-world.ts): signed deliveries from the
 * fake GitHub's point of view, through the real store, scheduler, task service and pull request
 * service, onto real bare repositories; the sandbox is the host stand-in that records what each
 * attempt was given.
 */

let world: GitHubWorld;

beforeEach(async () => {
  world = await openGitHubWorld();
});
afterEach(async () => {
  await world.close();
});

async function taskCount(): Promise<number> {
  return (await world.store.listTasks({ limit: 100 })).length;
}

function refs(bare: string): string {
  return runGit(bare, 'for-each-ref', '--format=%(refname) %(objectname)');
}

/** Makes branch `name` on acme/app with a commit on main, as a contributor would. */
function pushBranch(bare: string, name: string, file: string, content: string): string {
  const work = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  try {
    execFileSync('git', ['clone', '-q', bare, work]);
    runGit(work, 'checkout', '-q', '-b', name);
    execFileSync('sh', ['-c', `printf '%s' "$1" > "$2"`, 'sh', content, `${work}/${file}`]);
    runGit(work, 'add', '-A');
    runGit(work, 'commit', '-qm', `work on ${name}`);
    runGit(work, 'push', '-q', 'origin', name);
    return runGit(work, 'rev-parse', 'HEAD');
  } finally {
    execFileSync('rm', ['-rf', work]);
  }
}

/** Adds a commit on the existing branch `name` of `bare`, as someone else's push would. */
function pushOnto(bare: string, name: string, file: string, content: string): string {
  const work = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  try {
    execFileSync('git', ['clone', '-q', '-b', name, bare, work]);
    execFileSync('sh', ['-c', `printf '%s' "$1" > "$2"`, 'sh', content, `${work}/${file}`]);
    runGit(work, 'add', '-A');
    runGit(work, 'commit', '-qm', `more on ${name}`);
    runGit(work, 'push', '-q', 'origin', name);
    return runGit(work, 'rev-parse', 'HEAD');
  } finally {
    execFileSync('rm', ['-rf', work]);
  }
}

describe('GitHub webhook: verification and redelivery', () => {
  it('a missing or wrong signature is 401 and nothing runs; an unhandled event is 204', async () => {
    const payload = issueCommentPayload({ body: '@berth fix the adder' });
    const wrong = await world.deliver('issue_comment', payload, 'd-wrong', 'not-the-secret');
    expect(wrong.status).toBe(401);
    const unsigned = await world.webhook
      .receive(
        new Request('http://berth.test/x', {
          method: 'POST',
          headers: { 'x-github-event': 'issue_comment', 'x-github-delivery': 'd-none' },
          body: JSON.stringify(payload),
        }),
      )
      .catch((e: { httpStatus: number }) => e.httpStatus);
    expect(unsigned).toBe(401);
    // The right signature on another body: 401 too (the HMAC covers the exact bytes).
    const signed = await world.deliver('issue_comment', payload, 'd-tamper');
    expect(signed.status).toBe(202);
    expect(await taskCount()).toBe(1);
    const tampered = await world.webhook
      .receive(
        new Request('http://berth.test/x', {
          method: 'POST',
          headers: {
            'x-github-event': 'issue_comment',
            'x-github-delivery': 'd-tamper-2',
            'x-hub-signature-256': 'sha256=' + '0'.repeat(64),
          },
          body: JSON.stringify(payload),
        }),
      )
      .catch((e: { httpStatus: number }) => e.httpStatus);
    expect(tampered).toBe(401);
    expect((await world.deliver('issues', { action: 'opened' })).status).toBe(204);
    expect((await world.deliver('issue_comment', { ...payload, action: 'edited' })).status).toBe(
      204,
    );
    expect((await world.deliver('ping', { zen: 'Keep it logically awesome.' })).status).toBe(200);
    expect(await taskCount()).toBe(1);
  });

  it('a redelivery (same X-GitHub-Delivery) starts one task, remembered in the store', async () => {
    const payload = issueCommentPayload({ body: '@berth fix the adder' });
    const first = await world.deliver('issue_comment', payload, 'd-again');
    const second = await world.deliver('issue_comment', payload, 'd-again');
    expect(first.status).toBe(202);
    expect(second.status).toBe(200);
    expect(await second.json()).toEqual({ duplicate: true });
    expect(await taskCount()).toBe(1);
    expect(
      await world.store.claimGitHubDelivery('d-again', 'issue_comment', new Date().toISOString()),
    ).toBe(false);
    expect(world.fake.comments).toHaveLength(1);
  });
});

describe('GitHub webhook: who may, and what starts nothing', () => {
  it('a commenter below triggers.github.allow, or unknown to the repository, starts nothing (asked of the API)', async () => {
    for (const login of ['reader', 'triager', 'stranger']) {
      const response = await world.deliver(
        'issue_comment',
        issueCommentPayload({ body: '@berth fix the adder', login }),
      );
      expect(response.status).toBe(202);
    }
    expect(await taskCount()).toBe(0);
    expect(world.fake.comments).toEqual([]);
    expect(world.fake.reactions).toEqual([]);
    const refused = world.logs.filter((l) => l.message.startsWith('github comment refused'));
    expect(refused.map((l) => l.fields.author)).toEqual(['reader', 'triager', 'stranger']);
    expect(refused[0]?.message).toContain('reader has read on acme/app');
    expect(refused[2]?.message).toContain('stranger is not a collaborator of acme/app');
    // Asked of the API each time, though every payload said author_association OWNER.
    const asked = world.fake.requests.filter((r) => r.path.includes('/permission'));
    expect(asked.map((r) => r.path)).toEqual([
      '/repos/acme/app/collaborators/reader/permission',
      '/repos/acme/app/collaborators/triager/permission',
      '/repos/acme/app/collaborators/stranger/permission',
    ]);
  });

  it('a quoted or mid-sentence mention, a bot, a locked or a closed issue start nothing', async () => {
    for (const payload of [
      issueCommentPayload({ body: '> @berth fix the adder\n\nI agree with this.' }),
      issueCommentPayload({ body: 'maybe @berth fix the adder could do it' }),
      issueCommentPayload({ body: '@berth fix the adder', login: 'berth' }),
      issueCommentPayload({ body: '@berth fix the adder', locked: true }),
      issueCommentPayload({ body: '@berth fix the adder', state: 'closed' }),
    ])
      await world.deliver('issue_comment', payload);
    expect(await taskCount()).toBe(0);
    expect(world.fake.comments).toEqual([]);
    expect(world.fake.requests).toEqual([]);
    const messages = world.logs.map((l) => l.message);
    expect(messages).toContain('github comment ignored: no line starts with @berth');
    expect(messages).toContain('github comment ignored: written by a bot');
    expect(messages).toContain('github comment ignored: the issue is locked; nothing runs');
    expect(messages).toContain('github comment ignored: the issue is closed; nothing runs');
  });

  it('a repository no environment serves gets a reply naming the setting', async () => {
    await world.deliver(
      'issue_comment',
      issueCommentPayload({
        body: '@berth fix it',
        login: 'maintainer',
        repository: {
          full_name: 'acme/other',
          name: 'other',
          owner: { login: 'acme' },
          default_branch: 'main',
        },
      }),
    );
    expect(await taskCount()).toBe(0);
    expect(world.fake.comments).toHaveLength(1);
    expect(world.fake.comments[0]?.repository).toBe('acme/other');
    expect(world.fake.comments[0]?.body).toContain(
      'triggers: { github: { repository: acme/other } }',
    );
  });

  it('a bad option gets a reply with the reason and no task', async () => {
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth attempts=99 fix it' }),
    );
    expect(await taskCount()).toBe(0);
    expect(world.fake.comments[0]?.body).toContain('attempts= takes a whole number from 1 to 4');
  });
});

describe('GitHub webhook: tasks from comments', () => {
  it('issue comment: task on the default branch, a PR whose body says Fixes #N, a reply linking it', async () => {
    world.sandbox.agent = (dir) => {
      execFileSync('sh', ['-c', `echo 'add() { echo $(( $1 + $2 )); }' > ${dir}/add.sh`]);
      return 'Fixed it. @octocat Fixes #1 <img src=x>';
    };
    world.sandbox.verification = {
      command: 'sh test.sh',
      exitCode: 0,
      output: 'ok',
      passed: true,
      durationMs: 5,
      timedOut: false,
    };
    const response = await world.deliver(
      'issue_comment',
      issueCommentPayload({
        body: 'Thanks!\n@berth fix this, closes #97\nadd must add',
        number: 7,
        description: 'add 2 3 prints -1\n\nFixes #99 resolves acme/app#98 @everyone',
      }),
    );
    expect(response.status).toBe(202);
    const [task] = await world.store.listTasks({ limit: 10 });
    expect(task?.ref).toEqual({});
    expect(task?.createdBy).toBe('github:writer');
    expect(task?.prompt).toContain('Request:\nfix this, closes #97\nadd must add');
    expect(task?.prompt).toContain('GitHub issue #7 of acme/app');
    const run = world.sandbox.runs[0];
    expect(run?.secrets).toEqual({ DEPLOY_TOKEN: SECRET_VALUE });
    // The eyes reaction on the comment, then the PR, then the reply.
    expect(world.fake.reactions).toEqual([
      expect.objectContaining({ repository: 'acme/app', kind: 'issue', content: 'eyes' }),
    ]);
    expect(world.fake.pulls).toHaveLength(1);
    const pull = world.fake.pulls[0]!;
    expect(pull.head).toBe(`berth/${task!.id}`);
    expect(pull.base).toBe('main');
    expect(pull.body.startsWith('Fixes #7\n')).toBe(true);
    // The agent's "Fixes #1" and mention are inside the code block only.
    expect(pull.body.split('```')[0]).not.toContain('#1');
    // The commit's message is Berth's: no closing keyword or mention from the issue or comment works.
    const commitMessage = runGit(world.bare, 'log', '-1', '--format=%B', `berth/${task!.id}`);
    expect(commitMessage).toContain(`Task ${task!.id}, asked by writer on issue #7 of acme/app.`);
    expect(commitMessage).not.toMatch(/#9[0-9]|@everyone/);
    expect(runGit(world.bare, 'show', `berth/${task!.id}:add.sh`)).toBe(
      'add() { echo $(( $1 + $2 )); }',
    );
    expect(world.fake.comments).toHaveLength(1);
    const reply = world.fake.comments[0]!;
    expect(reply.issue).toBe(7);
    expect(reply.body).toContain(
      `Opened pull request #1 (${'https://github.example/acme/app/pull/1'})`,
    );
    expect(reply.body).toContain('Verify: passed');
    expect(reply.body).toContain(`https://berth.example/tasks/${task!.id}`);
    expect(reply.body.split('```')[0]).not.toContain('@octocat');
  });

  it('PR comment (same repository): task on the head branch, a commit pushed onto it, a reply', async () => {
    const head = pushBranch(world.bare, 'fix-adder', 'NOTES.md', 'wip\n');
    const number = world.fake.addPull({
      owner: 'acme',
      repo: 'app',
      head: 'fix-adder',
      base: 'main',
      title: 'Fix the adder',
    });
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth the tests fail, fix them', number, pull: true }),
    );
    const [task] = await world.store.listTasks({ limit: 10 });
    expect(task?.ref).toEqual({ branch: 'fix-adder' });
    const tip = runGit(world.bare, 'rev-parse', 'refs/heads/fix-adder');
    expect(tip).not.toBe(head);
    expect(runGit(world.bare, 'rev-parse', `${tip}^`)).toBe(head);
    expect(runGit(world.bare, 'show', 'fix-adder:add.sh')).toBe('add() { echo $(( $1 + $2 )); }');
    // No berth/ branch and no new pull request.
    expect(refs(world.bare)).not.toContain('refs/heads/berth/');
    expect(world.fake.pulls).toHaveLength(1);
    expect(world.fake.comments[0]?.body).toContain(
      `Pushed commit \`${tip.slice(0, 12)}\` onto \`fix-adder\``,
    );
  });

  it('a review comment asking for work: task on the head branch, reply in the thread', async () => {
    pushBranch(world.bare, 'fix-adder', 'NOTES.md', 'wip\n');
    const number = world.fake.addPull({
      owner: 'acme',
      repo: 'app',
      head: 'fix-adder',
      base: 'main',
      title: 'x',
    });
    await world.deliver(
      'pull_request_review_comment',
      reviewCommentPayload({ body: '@berth attempts=2 make this add', number, commentId: 555 }),
    );
    const [task] = await world.store.listTasks({ limit: 10 });
    expect(task?.attemptCount).toBe(2);
    expect(task?.prompt).toContain('The comment is on add.sh:');
    expect(world.fake.reactions).toEqual([
      expect.objectContaining({ kind: 'review', comment: 555, content: 'eyes' }),
    ]);
    expect(world.fake.replies).toHaveLength(1);
    expect(world.fake.replies[0]).toMatchObject({ inReplyTo: 555, issue: number });
    expect(world.fake.comments).toEqual([]);
  });

  it('@berth review: a read-only task (internet off), nothing pushed, its message as a review', async () => {
    pushBranch(world.bare, 'fix-adder', 'NOTES.md', 'wip\n');
    const number = world.fake.addPull({
      owner: 'acme',
      repo: 'app',
      head: 'fix-adder',
      base: 'main',
      title: 'x',
    });
    world.sandbox.agent = (dir) => {
      // A review that changes files anyway: nothing of it may be pushed.
      execFileSync('sh', ['-c', `echo changed > ${dir}/add.sh`]);
      return 'Looks wrong: @octocat see #3 <script>x</script>';
    };
    const before = refs(world.bare);
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth review check the arithmetic', number, pull: true }),
    );
    const [task] = await world.store.listTasks({ limit: 10 });
    expect(task?.agent).toMatchObject({ readOnly: true });
    expect(task?.prompt).toContain('Also:\ncheck the arithmetic');
    const run = world.sandbox.runs[0]!;
    expect(run.environment.spec.internet.access).toBe('off');
    expect(refs(world.bare)).toBe(before);
    expect(world.fake.pulls).toHaveLength(1);
    expect(world.fake.reviews).toHaveLength(1);
    const review = world.fake.reviews[0]!;
    expect(review.event).toBe('COMMENT');
    expect(review.body).toContain('Looks wrong');
    expect(review.body).not.toMatch(/@[a-z]/);
    expect(review.body).not.toMatch(/#[0-9]/);
    expect(review.body).not.toContain('<script>');
    expect(world.fake.comments).toEqual([]);
  });

  it("a fork's PR: no secrets in the setup, nothing pushed to the fork, a new PR into its branch", async () => {
    const forkHead = pushBranch(world.forkBare, 'feature', 'NOTES.md', 'from a fork\n');
    const forkBefore = refs(world.forkBare);
    const number = world.fake.addPull({
      owner: 'acme',
      repo: 'app',
      head: 'feature',
      base: 'main',
      title: 'A contribution',
      headRepo: 'contrib/app',
    });
    // GitHub keeps a fork's head in the base repository as refs/pull/N/head.
    runGit(world.bare, 'fetch', '-q', world.forkBare, `feature:refs/pull/${number}/head`);
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix the adder too', number, pull: true }),
    );
    const [task] = await world.store.listTasks({ limit: 10 });
    expect(task?.ref).toEqual({ sha: forkHead });
    expect(task?.agent).toMatchObject({ withoutSecrets: true });
    const run = world.sandbox.runs[0]!;
    expect(run.secrets).toEqual({});
    expect(JSON.stringify(run)).not.toContain(SECRET_VALUE);
    expect(refs(world.forkBare)).toBe(forkBefore);
    // The change: berth/<task> of acme/app, proposed into contrib/app's feature.
    expect(runGit(world.bare, 'rev-parse', `berth/${task!.id}^`)).toBe(forkHead);
    const opened = world.fake.pulls.find((p) => p.owner === 'contrib');
    expect(opened).toMatchObject({ repo: 'app', head: `berth/${task!.id}`, base: 'feature' });
    // In the fork, #N would name the fork's own issue: the reference names the repository.
    expect(opened?.body.startsWith(`For acme/app#${number}.`)).toBe(true);
    const create = world.fake.requests.find(
      (r) => r.method === 'POST' && r.path === '/repos/contrib/app/pulls',
    );
    expect(create?.body?.head).toBe(`acme:berth/${task!.id}`);
    expect(world.fake.comments[0]?.body).toContain(
      'comes from a fork, and Berth does not push to forks: Berth pushed',
    );
  });

  it('a task that fails replies with the error and pushes nothing', async () => {
    world.sandbox.agent = () => {
      throw new Error('the agent crashed');
    };
    await world.deliver('issue_comment', issueCommentPayload({ body: '@berth fix it' }));
    expect(world.fake.pulls).toEqual([]);
    expect(world.fake.comments[0]?.body).toContain('No attempt succeeded; nothing was pushed.');
    expect(world.fake.comments[0]?.body).toContain('the agent crashed');
  });
});

describe('GitHub webhook: refusals after acceptance and options', () => {
  it('a PR branch that moved while the task ran: nothing is forced, the reply says so', async () => {
    pushBranch(world.bare, 'fix-adder', 'NOTES.md', 'wip\n');
    const number = world.fake.addPull({
      owner: 'acme',
      repo: 'app',
      head: 'fix-adder',
      base: 'main',
      title: 'x',
    });
    let moved = '';
    world.sandbox.agent = (dir) => {
      // Someone pushes to the branch while the agent works.
      moved = pushOnto(world.bare, 'fix-adder', 'OTHER.md', 'pushed meanwhile\n');
      execFileSync('sh', ['-c', `echo 'add() { echo $(( $1 + $2 )); }' > ${dir}/add.sh`]);
      return 'Fixed.';
    };
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix it', number, pull: true }),
    );
    expect(runGit(world.bare, 'rev-parse', 'refs/heads/fix-adder')).toBe(moved);
    expect(world.fake.comments[0]?.body).toContain('The change was not delivered');
    expect(world.fake.comments[0]?.body).toContain('nothing was pushed');
  });

  it('review on an issue, and env= naming an environment that does not serve the repository: a reply, no task', async () => {
    await world.deliver('issue_comment', issueCommentPayload({ body: '@berth review' }));
    await world.deliver('issue_comment', issueCommentPayload({ body: '@berth env=other fix it' }));
    expect(await taskCount()).toBe(0);
    expect(world.fake.comments.map((c) => c.body)).toEqual([
      'Berth reviews pull requests only: `review` on an issue starts nothing.',
      'env=other: that environment does not serve acme/app (it needs `triggers: { github: { repository: acme/app } }`)',
    ]);
    // env= naming the environment that serves it is taken.
    await world.deliver('issue_comment', issueCommentPayload({ body: '@berth env=app fix it' }));
    expect(await taskCount()).toBe(1);
  });

  it('with a token, a repository BERTH_GITHUB_REPOSITORIES does not list: nothing is asked or run', async () => {
    const limited = await openGitHubWorld({ repositories: ['acme/web', 'contrib/*'] });
    try {
      await limited.deliver('issue_comment', issueCommentPayload({ body: '@berth fix it' }));
      expect(await limited.store.listTasks({ limit: 5 })).toEqual([]);
      expect(limited.fake.requests).toEqual([]);
      expect(limited.logs.map((l) => l.message)).toContain(
        'github comment ignored: BERTH_GITHUB_REPOSITORIES does not list acme/app; nothing runs',
      );
    } finally {
      await limited.close();
    }
  });
});

void ACME_APP;
