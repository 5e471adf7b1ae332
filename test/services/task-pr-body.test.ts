import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { environmentSpecSchema } from '../../src/domain/environment/environment-spec.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import type { Task } from '../../src/domain/task/task.js';
import { PullRequestService } from '../../src/services/pull-request-service.js';
import { TaskService } from '../../src/services/task-service.js';
import { FakeGitHub } from '../support/fake-github.js';
import { expectInertPullBody } from '../support/inert-pull-body.js';
import { makeAdderRemote, type AdderRemote } from '../support/pull-request-support.js';

/**
 * `berth task pr` (POST /v1/tasks/{id}/pull-request, TaskService.pullRequest) without `--body`:
 * the default body carries the agent's final message, which a sandbox wrote (review 3, A3). It
 * must not ping (`@org/team`), close issues when merged (`Fixes #1`, `owner/repo#2`, an issue
 * URL), or show HTML and images (a tracking pixel): the message sits in a code block it cannot
 * close. A body the person gives is theirs and goes as given. Real SQLite, a real bare remote,
 * the fake GitHub API on loopback.
 */

const T0 = '2026-01-01T00:00:00.000Z';
const ADMIN = { tokenId: 'tok_admin', tokenName: 'admin', admin: true };

const HOSTILE = [
  'Done.',
  'Fixes #1',
  'Closes acme/payments#2',
  'Resolves https://github.com/acme/payments/issues/3',
  'cc @acme/everyone @octocat',
  '<img src="https://evil.test/beacon.png">',
  '<details><summary>ok</summary>hidden</details>',
  '![x](https://evil.test/b2.png)',
  '````',
  'fixes #5',
  '````',
].join('\n');

let dir: string;
let store: SqliteStore;
let service: TaskService;
let github: FakeGitHub;
let adder: AdderRemote;

async function makeTask(id: string, message: string): Promise<void> {
  const task: Task = {
    id,
    environmentId: 'env_1',
    prompt: 'Fix the adder',
    command: null,
    ref: {},
    repository: null,
    attemptCount: 1,
    status: 'succeeded',
    createdAt: T0,
    updatedAt: T0,
  };
  const attempt: Attempt = {
    id: `att_${id}`,
    taskId: id,
    index: 0,
    phase: 'succeeded',
    cacheHit: true,
    error: null,
    result: {
      baseCommit: adder.base,
      diff: adder.diff,
      files: [],
      message,
      commands: [],
      snapshotImage: null,
    },
    createdAt: T0,
    startedAt: T0,
    finishedAt: T0,
  };
  await store.createTask(task, [attempt]);
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-prbody-'));
  const bare = join(dir, 'remote.git');
  adder = makeAdderRemote(bare);
  github = new FakeGitHub({ token: 'ghs-good', repositories: { 'acme/payments': bare } });
  await github.start();
  store = SqliteStore.open(join(dir, 'data'));
  await store.migrate();
  await store.createEnvironment({
    id: 'env_1',
    spec: environmentSpecSchema.parse({ name: 'svc', repository: bare }),
    createdByTokenId: null,
    secrets: [],
    now: T0,
  });
  service = new TaskService({
    store,
    runner: {
      submit: () => Promise.reject(new Error('not used')),
      cancel: () => Promise.resolve(),
      subscribe: () => () => undefined,
    },
    resetCache: () => Promise.resolve(0),
    agentAvailable: false,
    agentUnavailableReason: 'no model',
    pullRequests: new PullRequestService({
      githubToken: 'ghs-good',
      githubApiUrl: github.url,
      githubRemotes: { [bare]: 'acme/payments' },
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: true,
    }),
  });
});

afterEach(async () => {
  await store.close();
  await github.stop();
  rmSync(dir, { recursive: true, force: true });
});

const lastBody = () => (github.pulls.at(-1) as unknown as { body: string }).body;

describe("task pr's default body", () => {
  it("holds the agent's final message inert: no mention, closing keyword, HTML or image", async () => {
    await makeTask('task_hostile', HOSTILE);
    const outcome = await service.pullRequest(ADMIN, 'task_hostile', {});
    expect(outcome.pullRequest?.created).toBe(true);
    const [summary = '', footer = ''] = lastBody().split('\n---\n');
    expectInertPullBody(summary, HOSTILE);
    expect(footer).toBe('Made by Berth: task task_hostile, attempt att_task_hostile.');
  });

  it('says there is no summary for an empty final message', async () => {
    await makeTask('task_quiet', '  \n');
    await service.pullRequest(ADMIN, 'task_quiet', {});
    expect(lastBody()).toBe(
      'The agent left no summary.\n\n---\nMade by Berth: task task_quiet, attempt att_task_quiet.',
    );
  });

  it('sends a body the person gave as given', async () => {
    await makeTask('task_given', HOSTILE);
    await service.pullRequest(ADMIN, 'task_given', { body: 'Fixes #7, cc @octocat' });
    expect(lastBody()).toBe('Fixes #7, cc @octocat');
  });
});
