import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../../src/domain/environment/environment-file.js';
import { newId } from '../../../src/domain/ids.js';
import type { AttemptResult } from '../../../src/domain/task/attempt.js';
import type { AgentPhase } from '../../../src/lifecycle/agent-phase.js';
import type {
  AttemptOutcome,
  AttemptRun,
  AttemptRunner,
} from '../../../src/lifecycle/attempt-runner.js';
import { Scheduler } from '../../../src/lifecycle/scheduler.js';
import type { SandboxRuntime } from '../../../src/ports/sandbox-runtime.js';
import { PullRequestService } from '../../../src/services/pull-request-service.js';
import { TaskService } from '../../../src/services/task-service.js';
import { GitHubAuth, type GitHubIdentity } from '../../../src/integrations/github/github-auth.js';
import { GitHubWebhook } from '../../../src/integrations/github/github-webhook.js';
import { FakeGitHub, signedDelivery, type FakeGitHubApp } from '../../support/fake-github.js';
import { makeAdderRemote, type AdderRemote } from '../../support/pull-request-support.js';
import { runGit } from '../../support/run-git.js';

/**
 * The GitHub integration's world without Docker: a real SQLite store, the real Scheduler and
 * TaskService, the real PullRequestService pushing to real bare git repositories (`acme/app`, and
 * a fork `contrib/app`), the fake GitHub API (test/support/fake-github.ts), and deliveries signed
 * as GitHub signs them. Only the sandbox is stood in for: `HostSandbox` plays the attempt runner
 * on this host (a clone of the task's ref with real git, the test's "agent" editing files, the
 * diff as the runner computes it), and records what each attempt was given (secrets, internet,
 * ref, prompt), so the tests can see what a fork's or a review's task would have had.
 */

export const WEBHOOK_SECRET = 'whsec-berth-test-0b9f';
export const SERVER_TOKEN = 'ghs-berth-server-token';
export const SECRET_VALUE = 'sekrit-deploy-value-8c1d';

export type AgentScript = (dir: string, prompt: string) => string;

/** The stand-in attempt runner (see above). */
export class HostSandbox {
  readonly runs: AttemptRun[] = [];
  /** What the "agent" does in the checkout; returns its final message. */
  agent: AgentScript = (dir) => {
    writeFileSync(join(dir, 'add.sh'), 'add() { echo $(( $1 + $2 )); }\n');
    return 'Fixed add.sh: it subtracted.';
  };
  verification: AttemptResult['verification'] | undefined;

  run(run: AttemptRun): Promise<AttemptOutcome> {
    this.runs.push(run);
    const dir = mkdtempSync(join(tmpdir(), 'berth-gh-sandbox-'));
    try {
      const url = run.repository ?? run.environment.spec.repository.url;
      runGit(dir, 'init', '-q');
      runGit(dir, 'remote', 'add', 'origin', url);
      if (run.ref.sha !== undefined) {
        runGit(dir, 'fetch', '-q', 'origin', run.ref.sha);
        runGit(dir, 'checkout', '-q', '--detach', run.ref.sha);
      } else {
        const branch = run.ref.branch ?? run.environment.spec.repository.defaultBranch;
        runGit(dir, 'fetch', '-q', 'origin', `refs/heads/${branch}:refs/remotes/origin/${branch}`);
        runGit(dir, 'checkout', '-q', '-B', branch, `refs/remotes/origin/${branch}`);
      }
      const baseCommit = runGit(dir, 'rev-parse', 'HEAD');
      const message = this.agent(dir, run.prompt);
      runGit(dir, 'add', '-A');
      const diff = execFileSync('git', ['-C', dir, 'diff', '--cached', '--binary', baseCommit], {
        encoding: 'utf8',
      });
      return Promise.resolve({
        phase: 'succeeded',
        cacheHit: true,
        error: null,
        result: {
          baseCommit,
          diff,
          files: [],
          message,
          commands: [],
          snapshotImage: null,
          secretFiles: [],
          ...(this.verification ? { verification: this.verification } : {}),
        },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** A runtime with nothing in it (the scheduler's recovery lists sandboxes and networks). */
const EMPTY_RUNTIME = {
  list: () => Promise.resolve([]),
  listNetworks: () => Promise.resolve([]),
  remove: () => Promise.resolve(),
  removeNetwork: () => Promise.resolve(),
} as unknown as SandboxRuntime;

export interface GitHubWorld {
  dir: string;
  store: SqliteStore;
  fake: FakeGitHub;
  sandbox: HostSandbox;
  scheduler: Scheduler;
  tasks: TaskService;
  webhook: GitHubWebhook;
  logs: Array<{ level: string; fields: Record<string, unknown>; message: string }>;
  /** acme/app's bare repository (main: the adder that subtracts). */
  bare: string;
  adder: AdderRemote;
  /** contrib/app, a fork of acme/app. */
  forkBare: string;
  deliver(event: string, payload: unknown, delivery?: string, secret?: string): Promise<Response>;
  close(): Promise<void>;
}

export async function openGitHubWorld(
  options: {
    identity?: GitHubIdentity;
    app?: FakeGitHubApp;
    fakeToken?: string;
    /** BERTH_GITHUB_REPOSITORIES. */
    repositories?: string[];
  } = {},
): Promise<GitHubWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-gh-'));
  const bare = join(dir, 'acme-app.git');
  const adder = makeAdderRemote(bare);
  const forkBare = join(dir, 'contrib-app.git');
  execFileSync('git', ['clone', '-q', '--bare', bare, forkBare]);
  const other = join(dir, 'acme-other.git');
  makeAdderRemote(other);

  const fake = new FakeGitHub({
    token: options.fakeToken ?? SERVER_TOKEN,
    repositories: { 'acme/app': bare, 'contrib/app': forkBare, 'acme/other': other },
    permissions: {
      'acme/app': { maintainer: 'maintain', writer: 'write', reader: 'read', triager: 'triage' },
      'acme/other': { maintainer: 'maintain' },
    },
    ...(options.app ? { app: options.app } : {}),
  });
  await fake.start();

  const store = SqliteStore.open(dir);
  await store.migrate();
  await store.createEnvironment({
    id: newId('environment'),
    spec: parseEnvironmentSpec({
      name: 'app',
      repository: bare,
      image: 'minimal',
      secrets: ['DEPLOY_TOKEN'],
      internet: { access: 'on' },
      triggers: { github: { repository: 'acme/app' } },
    }),
    createdByTokenId: null,
    secrets: [],
    now: new Date().toISOString(),
  });

  const sandbox = new HostSandbox();
  const openSecrets = () => Promise.resolve({ DEPLOY_TOKEN: SECRET_VALUE });
  const scheduler = new Scheduler({
    store,
    runner: sandbox as unknown as AttemptRunner,
    runtime: EMPTY_RUNTIME,
    openSecrets,
    agentFor: () => ({}) as AgentPhase,
    concurrency: 2,
    pollMs: 50,
  });
  await scheduler.start();
  const tasks = new TaskService({
    store,
    runner: scheduler,
    resetCache: () => Promise.resolve(0),
    agentAvailable: true,
    agentUnavailableReason: '',
    openSecrets,
    pullRequests: new PullRequestService({
      githubToken: options.identity?.kind === 'app' ? undefined : SERVER_TOKEN,
      githubApiUrl: fake.url,
      githubRemotes: { [bare]: 'acme/app' },
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: true,
    }),
  });
  const logs: GitHubWorld['logs'] = [];
  const identity: GitHubIdentity = options.identity ?? { kind: 'token', token: SERVER_TOKEN };
  const webhook = new GitHubWebhook({
    settings: {
      webhookSecret: WEBHOOK_SECRET,
      mention: 'berth',
      apiUrl: fake.url,
      identity,
      repositories: options.repositories ?? [],
      publicUrl: 'https://berth.example',
      maxAttempts: 4,
    },
    auth: new GitHubAuth(fake.url, identity),
    store,
    tasks,
    waitForTask: (taskId) => scheduler.waitForTask(taskId),
    logger: {
      info: (fields, message) =>
        logs.push({ level: 'info', fields: fields as Record<string, unknown>, message }),
      warn: (fields, message) =>
        logs.push({ level: 'warn', fields: fields as Record<string, unknown>, message }),
    },
  });
  let deliveries = 0;
  return {
    dir,
    store,
    fake,
    sandbox,
    scheduler,
    tasks,
    webhook,
    logs,
    bare,
    adder,
    forkBare,
    async deliver(event, payload, delivery, secret = WEBHOOK_SECRET) {
      const id = delivery ?? `d-${++deliveries}-${Date.now()}`;
      const response = await webhook
        .receive(
          signedDelivery(
            'http://berth.test/v1/integrations/github/webhook',
            secret,
            event,
            payload,
            id,
          ),
        )
        .catch((error: unknown) => {
          const status = (error as { httpStatus?: number }).httpStatus ?? 500;
          return new Response(JSON.stringify({ message: (error as Error).message }), { status });
        });
      await webhook.idle();
      return response;
    },
    async close() {
      await webhook.idle();
      await scheduler.stop({ cancelRunning: true });
      await store.close();
      await fake.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const REPOSITORY = {
  full_name: 'acme/app',
  name: 'app',
  owner: { login: 'acme' },
  default_branch: 'main',
};

let commentIds = 100;

/** An `issue_comment` / `created` payload as GitHub sends it (the fields Berth reads, and some). */
export function issueCommentPayload(options: {
  body: string;
  login?: string;
  number?: number;
  pull?: boolean;
  state?: string;
  locked?: boolean;
  repository?: typeof REPOSITORY;
  installation?: number;
  commentId?: number;
  /** The issue's own text (anyone's). */
  description?: string;
}): Record<string, unknown> {
  const number = options.number ?? 7;
  const repository = options.repository ?? REPOSITORY;
  return {
    action: 'created',
    issue: {
      number,
      title: 'add() subtracts',
      body: options.description ?? 'add 2 3 prints -1',
      state: options.state ?? 'open',
      locked: options.locked ?? false,
      user: { login: 'reporter', type: 'User' },
      author_association: 'OWNER',
      ...(options.pull
        ? {
            pull_request: {
              url: `https://api.github.example/repos/${repository.full_name}/pulls/${number}`,
            },
          }
        : {}),
    },
    comment: {
      id: options.commentId ?? ++commentIds,
      body: options.body,
      user: { login: options.login ?? 'writer', type: 'User' },
      // What Berth must not trust: GitHub's own field, here claiming the most.
      author_association: 'OWNER',
    },
    repository,
    sender: { login: options.login ?? 'writer', type: 'User' },
    ...(options.installation !== undefined ? { installation: { id: options.installation } } : {}),
  };
}

/** A `pull_request_review_comment` / `created` payload. */
export function reviewCommentPayload(options: {
  body: string;
  number: number;
  login?: string;
  commentId?: number;
}): Record<string, unknown> {
  return {
    action: 'created',
    pull_request: {
      number: options.number,
      title: 'Fix the adder',
      body: '',
      state: 'open',
      locked: false,
    },
    comment: {
      id: options.commentId ?? ++commentIds,
      body: options.body,
      user: { login: options.login ?? 'writer', type: 'User' },
      path: 'add.sh',
      diff_hunk: '@@ -1 +1 @@\n-add() { echo $(( $1 - $2 )); }',
      author_association: 'OWNER',
    },
    repository: REPOSITORY,
    sender: { login: options.login ?? 'writer', type: 'User' },
  };
}

export { REPOSITORY as ACME_APP, runGit };
