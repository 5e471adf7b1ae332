import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { environmentSpecSchema } from '../../src/domain/environment/environment-spec.js';
import type { Attempt, AttemptResult } from '../../src/domain/task/attempt.js';
import type { Task } from '../../src/domain/task/task.js';
import { attemptView } from '../../src/server/task-views.js';
import { PullRequestService } from '../../src/services/pull-request-service.js';
import { TaskService } from '../../src/services/task-service.js';
import {
  berthErrorOf,
  makeAdderRemote,
  type AdderRemote,
} from '../support/pull-request-support.js';
import { runGit } from '../support/run-git.js';

/**
 * A secret value of the environment is never pushed as it is (issue 21, 2): `task pr` refuses an
 * attempt whose results name files that held one, and looks for the environment's values again
 * in everything it would push (a diff stored before the check existed, a prompt with a token
 * pasted in). On a real SQLite store and a real bare remote; the clean push proves the refusals
 * are not vacuous.
 */

const T0 = '2026-01-01T00:00:00.000Z';
const ADMIN = { tokenId: 'tok_admin', tokenName: 'admin', admin: true };
const TOKEN = 'npm_8b1d4f2c9e7a0d3b6f5e';

let dir: string;
let store: SqliteStore;
let service: TaskService;
let bare: string;
let adder: AdderRemote;

function branches(): string {
  return runGit(bare, 'for-each-ref', '--format=%(refname)', 'refs/heads/berth/');
}

async function makeTask(id: string, prompt: string, result: Partial<AttemptResult>): Promise<void> {
  const task: Task = {
    id,
    environmentId: 'env_1',
    prompt,
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
      message: 'done',
      commands: [],
      snapshotImage: null,
      ...result,
    },
    createdAt: T0,
    startedAt: T0,
    finishedAt: T0,
  };
  await store.createTask(task, [attempt]);
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-prsec-'));
  bare = join(dir, 'remote.git');
  adder = makeAdderRemote(bare);
  store = SqliteStore.open(join(dir, 'data'));
  await store.migrate();
  await store.createEnvironment({
    id: 'env_1',
    spec: environmentSpecSchema.parse({ name: 'svc', repository: bare, secrets: ['NPM_TOKEN'] }),
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
    openSecrets: () => Promise.resolve({ NPM_TOKEN: TOKEN }),
    pullRequests: new PullRequestService({
      githubApiUrl: 'http://127.0.0.1:1',
      githubRemotes: {},
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: true,
    }),
  });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('task pr and secret values', () => {
  it('refuses an attempt whose results name a file that held a secret', async () => {
    const masked = `${adder.diff}diff --git a/.npmrc b/.npmrc\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/.npmrc\n@@ -0,0 +1 @@\n+_authToken=***\n`;
    await makeTask('task_flag', 'Fix the adder', { diff: masked, secretFiles: ['.npmrc'] });
    const error = await berthErrorOf(service.pullRequest(ADMIN, 'task_flag', {}));
    expect(error.code).toBe('invalid_input');
    expect(error.message).toContain('holds a secret value of the environment in .npmrc');
    expect(error.message).toContain('nothing was pushed');
    expect(branches()).toBe('');
    // The API's view says so too (the diff route serves the masked diff and the list).
    const { attempt } = await service.resultAttempt(ADMIN, 'task_flag');
    expect(attemptView(attempt).secretFiles).toEqual(['.npmrc']);
  });

  it('checks a result stored before the check existed when serving it', async () => {
    const raw = adder.diff.replace('$1 + $2', `$1 + $2 # ${TOKEN}`);
    await makeTask('task_legacy', 'Fix the adder', { diff: raw });
    const detail = await service.get(ADMIN, 'task_legacy');
    const view = attemptView(detail.attempts[0]!);
    expect(view.secretFiles).toEqual(['add.sh']);
    expect(view.diff).toContain('$1 + $2 # ***');
    expect(JSON.stringify((await service.list(ADMIN, {}))[0]?.attempts)).not.toContain(TOKEN);
    const refused = await berthErrorOf(service.pullRequest(ADMIN, 'task_legacy', {}));
    expect(refused.message).toContain('holds a secret value of the environment in add.sh');
    expect(branches()).toBe('');
  });

  it('finds a current value in the diff, the commit message and the title before pushing', async () => {
    // A diff checked at collection against other values (the secret was changed since).
    const raw = adder.diff.replace('$1 + $2', `$1 + $2 # ${TOKEN}`);
    await makeTask('task_raw', 'Fix the adder', { diff: raw, secretFiles: [] });
    const inDiff = await berthErrorOf(service.pullRequest(ADMIN, 'task_raw', {}));
    expect(inDiff.message).toContain('the diff holds a secret value');
    expect(inDiff.message).not.toContain(TOKEN);

    await makeTask('task_prompt', `Fix the adder; the npm token is ${TOKEN}`, { secretFiles: [] });
    const inPrompt = await berthErrorOf(service.pullRequest(ADMIN, 'task_prompt', {}));
    expect(inPrompt.message).toContain('the commit message (the task prompt)');
    expect(inPrompt.message).not.toContain(TOKEN);
    const inTitle = await berthErrorOf(
      service.pullRequest(ADMIN, 'task_prompt', { title: `token ${TOKEN}` }),
    );
    expect(inTitle.message).toContain("the pull request's title");
    expect(branches()).toBe('');
  });

  it('finds a value in the diff by its content: base64 wrapped at 76 columns behind the + prefixes', async () => {
    const wrapped = (
      Buffer.from(`${'a'.repeat(50)}${TOKEN}${'b'.repeat(40)}`)
        .toString('base64')
        .match(/.{1,76}/g) ?? []
    ).map((line) => `+${line}\n`);
    expect(wrapped.length).toBeGreaterThan(1);
    const diff = `${adder.diff}diff --git a/auth.b64 b/auth.b64\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/auth.b64\n@@ -0,0 +1,${wrapped.length} @@\n${wrapped.join('')}`;
    await makeTask('task_b64', 'Fix the adder', { diff, secretFiles: [] });
    const refused = await berthErrorOf(service.pullRequest(ADMIN, 'task_b64', {}));
    expect(refused.message).toContain('the diff holds a secret value');
    expect(branches()).toBe('');
  });

  it('pushes an attempt without secret values', async () => {
    await makeTask('task_clean', 'Fix the adder', {});
    const done = await service.pullRequest(ADMIN, 'task_clean', {});
    expect(branches()).toBe('refs/heads/berth/task_clean');
    expect(
      execFileSync('git', ['-C', bare, 'show', `${done.commit}:add.sh`], { encoding: 'utf8' }),
    ).toContain('$1 + $2');
  });
});

describe('task pr and workflow files', () => {
  it('pushes a diff that adds .github/workflows/ only with allowWorkflows', async () => {
    const work = join(dir, 'work');
    execFileSync('git', ['clone', '-q', bare, work]);
    execFileSync('mkdir', ['-p', join(work, '.github', 'workflows')]);
    execFileSync('sh', ['-c', 'echo "on: push" > .github/workflows/ci.yml && git add -A'], {
      cwd: work,
    });
    const diff = execFileSync('git', ['-C', work, 'diff', '--cached', '--binary', adder.base], {
      encoding: 'utf8',
    });
    await makeTask('task_wf', 'Add CI', { diff, secretFiles: [] });
    const refused = await berthErrorOf(service.pullRequest(ADMIN, 'task_wf', {}));
    expect(refused.message).toContain('--allow-workflows');
    expect(branches()).toBe('');
    await service.pullRequest(ADMIN, 'task_wf', { allowWorkflows: true });
    expect(branches()).toBe('refs/heads/berth/task_wf');
  });
});
