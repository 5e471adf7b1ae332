import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { runBerth } from '../support/cli.js';

/**
 * Issue 20 item 7, through the built CLI against a real server: `task diff T --turn N` and
 * `--turn last` print one turn's own change; `task apply` after a follow-up says it applies the
 * whole change since the base; applying a change that is already there says "already applied".
 * The task (an attempt and two follow-ups, with real git diffs) is put in the store as the
 * lifecycle records one.
 */

const T0 = '2026-01-01T00:00:00.000Z';
let server: TestServer;
let store: SqliteStore;
let origin: string;
const made: string[] = [];
const diffs: { turn1: string; turn2: string; turn3: string; whole: string } = {
  turn1: '',
  turn2: '',
  turn3: '',
  whole: '',
};
let base = '';

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=T', '-c', 'user.email=t@e', ...args], {
    encoding: 'utf8',
  });
}

function temp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `berth-turns-${prefix}-`));
  made.push(dir);
  return dir;
}

const env = () => ({ BERTH_URL: server.url, BERTH_TOKEN: server.adminToken });

beforeAll(async () => {
  origin = temp('origin');
  git(origin, 'init', '-q', '-b', 'main');
  writeFileSync(join(origin, 'f.txt'), 'a\n');
  git(origin, 'add', '-A');
  git(origin, 'commit', '-qm', 'base');
  base = git(origin, 'rev-parse', 'HEAD').trim();
  // The three turns, as the lifecycle records them: each turn's own change against the state it
  // resumed, and the whole change against the base.
  const work = temp('work');
  execFileSync('git', ['clone', '-q', origin, work]);
  const diff = () => git(work, 'diff', '--binary', 'HEAD');
  writeFileSync(join(work, 'f.txt'), 'a\nturn one\n');
  diffs.turn1 = diff();
  git(work, 'add', '-A');
  const afterOne = git(work, 'write-tree').trim();
  writeFileSync(join(work, 'two.txt'), 'turn two\n');
  git(work, 'add', '-A');
  diffs.turn2 = git(work, 'diff', '--binary', '--cached', afterOne);
  const afterTwo = git(work, 'write-tree').trim();
  writeFileSync(join(work, 'f.txt'), 'a\nturn one\nturn three\n');
  git(work, 'add', '-A');
  diffs.turn3 = git(work, 'diff', '--binary', '--cached', afterTwo);
  diffs.whole = git(work, 'diff', '--binary', '--cached', 'HEAD');

  server = await startTestServer();
  const created = await server.request('POST', '/v1/environments', {
    body: { spec: { name: 'svc', repository: 'https://git.example/acme/svc.git' } },
  });
  expect(created.status, created.text).toBe(201);
  const environmentId = (created.json as { id: string }).id;
  store = SqliteStore.open(server.dataDir);
  const attempt = (
    n: number,
    diff: string,
    turnDiff: string | undefined,
    parent: string | undefined,
  ): Attempt => ({
    id: `att_turn${n}`,
    taskId: 'task_turns',
    index: n - 1,
    phase: 'succeeded',
    cacheHit: true,
    error: null,
    result: {
      baseCommit: base,
      diff,
      files: [],
      message: 'done',
      commands: [],
      snapshotImage: `berth-snapshot:att-turn${n}`,
      secretFiles: [],
      ...(turnDiff !== undefined ? { turnDiff } : {}),
    },
    ...(parent !== undefined
      ? {
          followUp: {
            parentAttemptId: parent,
            request: `turn ${n}`,
            prompt: `turn ${n}`,
            command: null,
            snapshotImage: `berth-snapshot:${parent}`,
            baseCommit: base,
          },
        }
      : {}),
    createdAt: T0,
    startedAt: T0,
    finishedAt: T0,
  });
  await store.createTask(
    {
      id: 'task_turns',
      environmentId,
      prompt: 'x',
      command: null,
      ref: {},
      repository: null,
      attemptCount: 1,
      status: 'succeeded',
      createdAt: T0,
      updatedAt: T0,
    },
    [
      attempt(1, diffs.turn1, undefined, undefined),
      attempt(2, diffs.turn1 + diffs.turn2, diffs.turn2, 'att_turn1'),
      attempt(3, diffs.whole, diffs.turn3, 'att_turn2'),
    ],
  );
  await store.pickAttempt('task_turns', 'att_turn3', T0);
});

afterAll(async () => {
  await store.close();
  await server.close();
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('follow-up diffs in the CLI', () => {
  it('task diff --turn N and --turn last print one turn; without --turn the whole change', async () => {
    const diff = (...args: string[]) => runBerth(['task', 'diff', 'task_turns', ...args], env());
    expect((await diff()).stdout).toBe(diffs.whole);
    expect((await diff('--turn', '1')).stdout).toBe(diffs.turn1);
    expect((await diff('--turn', '2')).stdout).toBe(diffs.turn2);
    expect((await diff('--turn', '3')).stdout).toBe(diffs.turn3);
    expect((await diff('--turn', 'last')).stdout).toBe(diffs.turn3);
    const json = await diff('--turn', 'last', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ attempt: 'att_turn3', turn: 3 });
    // The chain ends at the attempt asked for.
    expect((await diff('--attempt', 'att_turn2', '--turn', 'last')).stdout).toBe(diffs.turn2);
    const refused = await diff('--turn', '4');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--turn must be a whole number from 1 to 3, or last');
  });

  it('task apply says it applies the whole change since the base; a second apply says already applied', async () => {
    const clone = temp('clone');
    execFileSync('git', ['clone', '-q', origin, clone]);
    const apply = () => runBerth(['task', 'apply', 'task_turns'], env(), undefined, clone);
    const first = await apply();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(
      `the whole change since ${base.slice(0, 12)}: all 3 turns (attempt att_turn1 and 2 follow-ups)`,
    );
    expect(readFileSync(join(clone, 'f.txt'), 'utf8')).toBe('a\nturn one\nturn three\n');
    expect(readFileSync(join(clone, 'two.txt'), 'utf8')).toBe('turn two\n');
    const status = git(clone, 'status', '--porcelain', '--untracked-files=all');
    const again = await apply();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('is already applied');
    expect(again.stdout + again.stderr).not.toContain('conflict');
    expect(git(clone, 'status', '--porcelain', '--untracked-files=all')).toBe(status);
  });
});
