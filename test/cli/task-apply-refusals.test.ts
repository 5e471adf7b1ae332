import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Task } from '../../src/domain/task/task.js';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { runBerth } from '../support/cli.js';

/**
 * `berth task apply` as a person runs it (the built CLI against a real server), on attempts whose
 * stored diff is hostile (issue 21, 1) or held a secret (issue 21, 2): refused with what was
 * refused, and nothing written to the checkout.
 */

const T0 = '2026-01-01T00:00:00.000Z';
let server: TestServer;
let store: SqliteStore;
let environmentId: string;
let origin: string;
let base: string;
const made: string[] = [];

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=T', '-c', 'user.email=t@e', ...args], {
    encoding: 'utf8',
  });
}

function temp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `berth-applycli-${prefix}-`));
  made.push(dir);
  return dir;
}

/** A task with one succeeded attempt whose stored result is `diff` (and `secretFiles`). */
async function seed(id: string, diff: string, secretFiles?: string[]): Promise<void> {
  const task: Task = {
    id,
    environmentId,
    prompt: 'x',
    command: null,
    ref: {},
    repository: null,
    attemptCount: 1,
    status: 'succeeded',
    createdAt: T0,
    updatedAt: T0,
  };
  await store.createTask(task, [
    {
      id: `att_${id}`,
      taskId: id,
      index: 0,
      phase: 'succeeded',
      cacheHit: true,
      error: null,
      result: {
        baseCommit: base,
        diff,
        files: [],
        message: 'done',
        commands: [],
        snapshotImage: null,
        ...(secretFiles ? { secretFiles } : {}),
      },
      createdAt: T0,
      startedAt: T0,
      finishedAt: T0,
    },
  ]);
}

/** `berth task apply TASK` in a fresh clone; the clone's state before and after. */
async function applyIn(taskId: string) {
  const clone = temp('clone');
  execFileSync('git', ['clone', '-q', origin, clone]);
  const state = () =>
    git(clone, 'status', '--porcelain', '--untracked-files=all', '--ignored') +
    readFileSync(join(clone, 'f.txt'), 'utf8') +
    readFileSync(join(clone, '.git', 'config'), 'utf8');
  const before = state();
  const run = await runBerth(
    ['task', 'apply', taskId],
    { BERTH_URL: server.url, BERTH_TOKEN: server.adminToken },
    undefined,
    clone,
  );
  return { run, clone, unchanged: state() === before };
}

beforeAll(async () => {
  origin = temp('origin');
  git(origin, 'init', '-q', '-b', 'main');
  writeFileSync(join(origin, 'f.txt'), 'a\n');
  git(origin, 'add', '-A');
  git(origin, 'commit', '-qm', 'base');
  base = git(origin, 'rev-parse', 'HEAD').trim();
  server = await startTestServer();
  const created = await server.request('POST', '/v1/environments', {
    body: { spec: { name: 'svc', repository: 'https://git.example/acme/svc.git' } },
  });
  expect(created.status, created.text).toBe(201);
  environmentId = (created.json as { id: string }).id;
  store = SqliteStore.open(server.dataDir);
});

afterAll(async () => {
  await store.close();
  await server.close();
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('berth task apply refuses', () => {
  it('a copy from a file of the person (absolute, ../../x, .git/config), writing nothing', async () => {
    const key = join(temp('home'), 'id_ed25519');
    writeFileSync(key, 'PRIVATE KEY OF THE PERSON\n');
    for (const [n, from] of [key, '../../x', '.git/config'].entries()) {
      await seed(
        `task_copy${n}`,
        `diff --git a/docs/fixture.txt b/docs/fixture.txt\nsimilarity index 100%\ncopy from ${from}\ncopy to docs/fixture.txt\n`,
      );
      const { run, clone, unchanged } = await applyIn(`task_copy${n}`);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`copy from ${from}`);
      expect(run.stderr).toContain('nothing was changed');
      expect(unchanged).toBe(true);
      expect(existsSync(join(clone, 'docs'))).toBe(false);
    }
  });

  it('a diff whose results name a file that held a secret', async () => {
    const diff =
      'diff --git a/.npmrc b/.npmrc\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/.npmrc\n@@ -0,0 +1 @@\n+_authToken=***\n';
    await seed('task_secret', diff, ['.npmrc']);
    const { run, clone, unchanged } = await applyIn('task_secret');
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain('holds a secret value of the environment in .npmrc');
    expect(unchanged).toBe(true);
    expect(existsSync(join(clone, '.npmrc'))).toBe(false);
    // The diff route serves the masked diff with the list.
    const served = await server.request('GET', '/v1/tasks/task_secret/diff');
    expect(served.json).toMatchObject({ diff, secretFiles: ['.npmrc'] });
  });
});
