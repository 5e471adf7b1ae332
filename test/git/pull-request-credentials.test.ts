import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PullRequestService,
  type OpenPullRequestInput,
} from '../../src/services/pull-request-service.js';
import { FakeGitHub } from '../support/fake-github.js';
import { GitHttpServer } from '../support/git-http-server.js';
import {
  adderPullRequest,
  berthErrorOf,
  makeAdderRemote,
  type AdderRemote,
} from '../support/pull-request-support.js';
import { runGit } from '../support/run-git.js';

/**
 * `task pr` with an environment's git credentials (`repository.credentials`): the push to a
 * private HTTP remote (git http-backend behind Basic authentication) and the GitHub API both use
 * the environment's token, not the server's; a wrong token fails with the remote's own message.
 */

const USER = 'berth-bot';
const ENV_TOKEN = 'ghp-environment-token-3391';
const SERVER_TOKEN = 'ghs-server-token-1177';

let root: string;
let bare: string;
let adder: AdderRemote;
let remote: GitHttpServer;
let fake: FakeGitHub;
let url: string;

function service(): PullRequestService {
  return new PullRequestService({
    githubToken: SERVER_TOKEN,
    githubApiUrl: fake.url,
    githubRemotes: { [url]: 'acme/private' },
    gitAuthor: { name: 'Berth', email: 'berth@localhost' },
    allowLocalRepositories: false,
    // The remote is on loopback: allowed as the server's BERTH_SETUP_ALLOW would.
    addressPolicy: { allow: ['127.0.0.1/32'] },
    logger,
  });
}

/** git's own messages, which go to the server's log (the caller gets a fixed one). */
const logged: string[] = [];
const logger = {
  warn: (fields: object, message: string) => logged.push(`${message} ${JSON.stringify(fields)}`),
};

function input(taskId: string, extra: Partial<OpenPullRequestInput> = {}): OpenPullRequestInput {
  return adderPullRequest(url, adder, taskId, {
    credentials: { username: USER, password: ENV_TOKEN },
    ...extra,
  });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'berth-pr-private-'));
  bare = join(root, 'git', 'app.git');
  adder = makeAdderRemote(bare);
  remote = new GitHttpServer(join(root, 'git'), USER, ENV_TOKEN);
  await remote.start();
  url = remote.url('app.git');
  fake = new FakeGitHub({ token: ENV_TOKEN, repositories: { 'acme/private': bare } });
  await fake.start();
});

afterAll(async () => {
  await remote.stop();
  await fake.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('task pr with the environment credentials', () => {
  it('pushes with them to a private remote and opens the PR with them as the API token', async () => {
    const done = await service().open(input('task_priv1'));
    expect(runGit(bare, 'rev-parse', 'refs/heads/berth/task_priv1')).toBe(done.commit);
    expect(remote.seen.authorized).toBeGreaterThan(0);
    const basic = `Basic ${Buffer.from(`${USER}:${ENV_TOKEN}`).toString('base64')}`;
    expect(remote.seen.authorizations.filter((a) => a !== '')).toEqual(
      expect.arrayContaining([basic]),
    );
    expect(done.pullRequest).toMatchObject({ number: 1, created: true });
    expect(fake.requests.length).toBeGreaterThan(0);
    for (const request of fake.requests)
      expect(request.headers.authorization).toBe(`Bearer ${ENV_TOKEN}`);
    // The remote as reported carries no credentials.
    expect(done.remote).toBe(url);
  });

  it('without them the server token is not sent over plain HTTP; without any token the remote refuses', async () => {
    const authorized = remote.seen.authorizations.length;
    const error = await berthErrorOf(
      service().open(input('task_priv2', { credentials: undefined })),
    );
    expect(error.code).toBe('invalid_input');
    expect(error.message).toContain('only over HTTPS');
    expect(error.message).toContain('nothing was pushed');
    expect(remote.seen.authorizations.slice(authorized).join('')).not.toContain(
      Buffer.from(`x-access-token:${SERVER_TOKEN}`).toString('base64'),
    );
    const tokenless = new PullRequestService({
      githubApiUrl: fake.url,
      githubRemotes: { [url]: 'acme/private' },
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: false,
      addressPolicy: { allow: ['127.0.0.1/32'] },
      logger,
    });
    const refused = await berthErrorOf(
      tokenless.open(input('task_priv2', { credentials: undefined })),
    );
    expect(refused.code).toBe('remote_error');
    expect(refused.message).toContain(`could not clone ${url}`);
    expect(refused.message).toContain("git's message is in the server's log");
    expect(logged.at(-1)).toMatch(/Authentication failed|could not read Username/);
    expect(refused.message).toContain('nothing was pushed');
  });

  it("a wrong token: the remote's message in the log, nothing pushed, the token nowhere", async () => {
    remote.password = 'rotated-token';
    try {
      const { message } = await berthErrorOf(service().open(input('task_priv3')));
      expect(message).toContain(`could not clone ${url}`);
      expect(logged.at(-1)).toContain('Authentication failed');
      expect(logged.join('\n')).not.toContain(ENV_TOKEN);
      expect(message).toContain('nothing was pushed');
      expect(message).not.toContain(ENV_TOKEN);
      expect(() =>
        runGit(bare, 'rev-parse', '--verify', '-q', 'refs/heads/berth/task_priv3'),
      ).toThrow();
    } finally {
      remote.password = ENV_TOKEN;
    }
  });
});
