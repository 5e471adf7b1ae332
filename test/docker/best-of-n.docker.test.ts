import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, type CliResult } from '../support/cli.js';
import type { FakeGitHub } from '../support/fake-github.js';
import { runGit } from '../support/run-git.js';
import { startBestOfNWorld, type BestOfNWorld, type TaskJson } from './best-of-n-support.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Best-of-N through the CLI, a real server and the real Docker engine: three attempts from one
 * setup, each verified by the environment's `verify` command; a pick; `apply` into a fresh clone
 * (and its refusals); a pull request against a local bare remote standing for acme/svc on the
 * fake GitHub API (twice: same branch, same PR; then a 401).
 */

let world: BestOfNWorld;
let fake: FakeGitHub;
let bare: string;
/** A remote that is not on GitHub (not in BERTH_GITHUB_REMOTES). */
let plainBare: string;

function berth(...args: string[]): Promise<CliResult> {
  return world.berth(...args);
}

/** The CLI run from a directory (for `berth task apply`). */
function berthIn(cwd: string, ...args: string[]): Promise<CliResult> {
  return world.berthIn(cwd, ...args);
}

async function execJson(...args: string[]): Promise<TaskJson> {
  const r = await berth('exec', '--env', 'svc', '--wait', '--json', ...args);
  expect(r.stdout, r.stderr).not.toBe('');
  return JSON.parse(r.stdout) as TaskJson;
}

function clone(): string {
  return world.clone('bon-clone');
}

/** Everything `git status` and the work tree say, to show a refusal changed nothing. */
function state(dir: string): string {
  return (
    runGit(dir, 'status', '--porcelain', '--untracked-files=all') +
    runGit(dir, 'diff') +
    runGit(dir, 'rev-parse', 'HEAD')
  );
}

let best: TaskJson;

beforeAll(async () => {
  const image = lifecycleTestImage();
  const repo = makeSampleRepository();
  world = await startBestOfNWorld({
    prefix: 'bon',
    repository: repo.dir,
    slug: 'acme/svc',
    token: 'ghs-berth-test',
  });
  ({ github: fake, bare } = world);
  await world.createEnv(
    'bon',
    'svc.yaml',
    `name: svc
repository: ${bare}
image: ${image}
setup: |
  echo "setup ran"
verify: ./test.sh
`,
  );
  plainBare = join(tempDir('bon-plain'), 'plain.git');
  execFileSync('git', ['clone', '-q', '--bare', repo.dir, plainBare]);
  await world.createEnv(
    'bon',
    'plain.yaml',
    `name: plain\nrepository: ${plainBare}\nimage: ${image}\n`,
  );
}, 180_000);

afterAll(async () => {
  await world?.stop();
});

describe('best-of-N, pick, apply, pull request (docker)', () => {
  it('runs three attempts from one setup, each with its own diff and verification', async () => {
    best = await execJson(
      '--attempts',
      '3',
      '--command',
      'echo "answer $(od -An -N8 -tx8 /dev/urandom | tr -d " ")" > answer.txt; echo "wrote $(cat answer.txt)"',
    );
    expect(best.status).toBe('succeeded');
    expect(best.attempts).toHaveLength(3);
    const diffs = best.attempts.map((a) => a.diff);
    for (const diff of diffs) expect(diff).toContain('+++ b/answer.txt');
    expect(new Set(diffs).size).toBe(3);
    for (const a of best.attempts) {
      expect(a.verification).toMatchObject({ command: './test.sh', exitCode: 0, passed: true });
      expect(a.verification?.output).toContain('tests passed');
      expect(a.tokens).toBeNull();
    }
    expect(best.picked).toBeNull();

    expect(await world.setupRuns(best)).toBe(1);

    const show = await berth('task', 'show', best.id);
    expect(show.stdout).toMatch(/VERIFY\s+TIME\s+TOKENS/);
    expect(show.stdout.match(/passed/g)).toHaveLength(3);
    expect(show.stdout).toContain(`none picked yet: berth task pick ${best.id} ATTEMPT`);
  });

  it('records a failing verification without failing the attempt; a lone attempt is picked already', async () => {
    const broken = await execJson('--command', "echo 'add() { echo 0; }' > src/add.sh");
    const [attempt] = broken.attempts;
    expect(attempt?.status).toBe('succeeded');
    expect(attempt?.verification).toMatchObject({ passed: false });
    expect(attempt?.verification?.exitCode).not.toBe(0);
    expect(broken.picked).toBe(attempt?.id);
    const show = await berth('task', 'show', broken.id);
    expect(show.stdout).toContain(`failed (${attempt?.verification?.exitCode})`);
  });

  it('picks: unknown refused naming the attempts, a failed one with a warning, the chosen one marked', async () => {
    const unknown = await berth('task', 'pick', best.id, 'att_nope');
    expect(unknown.code).not.toBe(0);
    for (const a of best.attempts) expect(unknown.stderr).toContain(a.id);

    const failed = await execJson('--command', 'exit 3');
    expect(failed.status).toBe('failed');
    const pickFailed = await berth('task', 'pick', failed.id, failed.attempts[0]!.id);
    expect(pickFailed.code).toBe(0);
    expect(pickFailed.stderr).toContain('warning: attempt');
    expect(pickFailed.stderr).toContain('failed');

    // Several attempts and none picked: diff and apply refuse rather than take the first.
    const unpicked = await berth('task', 'diff', best.id);
    expect(unpicked.code).toBe(2);
    expect(unpicked.stdout).toBe('');
    expect(unpicked.stderr).toContain(
      `task ${best.id} has 3 attempts and none is picked: berth task pick ${best.id} ATTEMPT, or name one with --attempt ATTEMPT`,
    );
    const untouched = clone();
    const before = state(untouched);
    const notApplied = await berthIn(untouched, 'task', 'apply', best.id);
    expect(notApplied.code).toBe(2);
    expect(notApplied.stderr).toContain('none is picked');
    expect(notApplied.stderr).toContain('--attempt ATTEMPT');
    expect(state(untouched)).toBe(before);

    // --attempt A: that attempt's diff, which git apply accepts, not attempt 1's.
    const third = best.attempts[2]!;
    const diff = await berth('task', 'diff', best.id, '--attempt', third.id);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toBe(third.diff);
    expect(diff.stdout).not.toBe(best.attempts[0]!.diff);
    const patch = join(tempDir('bon-patch'), 'third.patch');
    writeFileSync(patch, diff.stdout);
    runGit(untouched, 'apply', '--check', patch);

    const chosen = best.attempts[1]!;
    const pick = await berth('task', 'pick', best.id, chosen.id);
    expect(pick.code, pick.stderr).toBe(0);
    expect(pick.stderr).toBe('');
    const show = await berth('task', 'show', best.id, '--json');
    expect((JSON.parse(show.stdout) as TaskJson).picked).toBe(chosen.id);
    const table = await berth('task', 'show', best.id);
    expect(table.stdout).toMatch(new RegExp(`\\*\\s+${chosen.id}`));
  });

  it('applies the pick to a fresh clone, and refuses (changing nothing) where it cannot', async () => {
    const chosen = best.attempts[1]!;
    const wanted = /^\+(answer .*)$/m.exec(chosen.diff)?.[1];
    const dir = clone();
    const applied = await berthIn(dir, 'task', 'apply', best.id);
    expect(applied.code, applied.stderr).toBe(0);
    expect(readFileSync(join(dir, 'answer.txt'), 'utf8')).toBe(`${wanted}\n`);

    const outside = tempDir('bon-outside');
    const notGit = await berthIn(outside, 'task', 'apply', best.id);
    expect(notGit.code).not.toBe(0);
    expect(notGit.stderr).toContain('not inside a git checkout');
    expect(existsSync(join(outside, 'answer.txt'))).toBe(false);

    const other = tempDir('bon-other');
    runGit(other, 'init', '-q', '-b', 'main');
    writeFileSync(join(other, 'README.md'), '# sample\n');
    runGit(other, 'add', '-A');
    runGit(other, 'commit', '-qm', 'another repository');
    const otherBefore = state(other);
    const foreign = await berthIn(other, 'task', 'apply', best.id);
    expect(foreign.code).not.toBe(0);
    expect(foreign.stderr).toContain(`does not have commit ${chosen.baseCommit?.slice(0, 12)}`);
    expect(state(other)).toBe(otherBefore);

    const conflicted = clone();
    writeFileSync(join(conflicted, 'answer.txt'), 'my own answer\n');
    runGit(conflicted, 'add', '-A');
    runGit(conflicted, 'commit', '-qm', 'my answer');
    const before = state(conflicted);
    const conflict = await berthIn(conflicted, 'task', 'apply', best.id);
    expect(conflict.code).not.toBe(0);
    expect(conflict.stderr).toContain('answer.txt');
    expect(conflict.stderr).toContain('nothing was changed');
    expect(state(conflicted)).toBe(before);
  });

  it('opens a pull request from the pick; run again it updates the same branch and PR; 401 says what was done', async () => {
    const chosen = best.attempts[1]!;
    const first = await berth('task', 'pr', best.id, '--json');
    expect(first.code, first.stderr).toBe(0);
    const opened = JSON.parse(first.stdout) as {
      branch: string;
      commit: string;
      attempt: string;
      pullRequest: { number: number; url: string; created: boolean };
    };
    expect(opened).toMatchObject({
      branch: `berth/${best.id}`,
      attempt: chosen.id,
      pullRequest: { number: 1, created: true },
    });
    expect(runGit(bare, 'rev-parse', `refs/heads/berth/${best.id}`)).toBe(opened.commit);
    expect(runGit(bare, 'log', '-1', '--format=%an|%s', opened.commit)).toMatch(
      /^Berth\|echo "answer/,
    );
    expect(runGit(bare, 'show', `${opened.commit}:answer.txt`)).toBe(
      /^\+(answer .*)$/m.exec(chosen.diff)?.[1],
    );
    const create = fake.requests.find((r) => r.method === 'POST');
    expect(create?.headers.authorization).toBe('Bearer ghs-berth-test');
    expect(create?.body).toMatchObject({ head: `berth/${best.id}`, base: 'main', draft: false });
    expect(String(create?.body?.body)).toContain('The command exited with code 0');

    const again = await berth('task', 'pr', best.id, '--title', 'Best answer');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(opened.pullRequest.url);
    expect(again.stderr).toContain('pull request #1 updated');
    expect(fake.pulls).toHaveLength(1);
    expect(fake.pulls[0]?.title).toBe('Best answer');

    fake.token = 'ghs-rotated';
    const denied = await berth('task', 'pr', best.id);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain(`the branch berth/${best.id} was pushed`);
    expect(denied.stderr).toContain('GitHub answered 401: Bad credentials');
    fake.token = 'ghs-berth-test';
  });

  it('pushes the branch to a remote that is not on GitHub and prints its name', async () => {
    const r = await berth(
      'exec',
      '--env',
      'plain',
      '--wait',
      '--json',
      '--command',
      'echo hi > hi.txt',
    );
    const task = JSON.parse(r.stdout) as TaskJson;
    expect(task.status, r.stderr).toBe('succeeded');
    const calls = fake.requests.length;
    const pr = await berth('task', 'pr', task.id, '--title', 'Say hi');
    expect(pr.code, pr.stderr).toBe(0);
    expect(pr.stdout).toBe(`berth/${task.id}\n`);
    expect(pr.stderr).toContain(`to ${plainBare}; not a GitHub remote, so no pull request`);
    const commit = runGit(plainBare, 'rev-parse', `refs/heads/berth/${task.id}`);
    expect(runGit(plainBare, 'show', `${commit}:hi.txt`)).toBe('hi');
    expect(fake.requests.length).toBe(calls);
  });

  it('follows up on the pick from its snapshot: the whole diff and the turn own diff, no setup; an expired snapshot is named', async () => {
    const chosen = best.attempts[1]!;
    const r = await berth(
      'task',
      'followup',
      best.id,
      '--command',
      'echo more >> answer.txt && echo extra > second.txt',
      '--wait',
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const after = JSON.parse(r.stdout) as TaskJson & { attempt: string };
    const turn = after.attempts.find((a) => a.id === after.attempt);
    expect(turn).toMatchObject({ status: 'succeeded', followUpOf: chosen.id });
    expect(after.picked).toBe(turn?.id);
    expect(turn?.baseCommit).toBe(chosen.baseCommit);
    // The whole change against the original commit: the first turn's answer and this turn's lines.
    expect(turn?.diff).toMatch(/^\+answer [0-9a-f]+$/m);
    expect(turn?.diff).toMatch(/^\+more$/m);
    expect(turn?.diff).toContain('+++ b/second.txt');
    // The turn's own change: only what it added.
    expect(turn?.turnDiff).toMatch(/^\+more$/m);
    expect(turn?.turnDiff).toContain('+++ b/second.txt');
    expect(turn?.turnDiff).not.toMatch(/^\+answer /m);
    expect(turn?.verification).toMatchObject({ passed: true });
    const show = await berth('task', 'show', best.id);
    expect(show.stdout).toContain(`${turn?.id} follows up ${chosen.id}: echo more >> answer.txt`);
    const logs = await berth('task', 'logs', best.id, '--attempt', turn!.id);
    expect(logs.stdout).toContain(`continuing attempt ${chosen.id}`);
    expect(logs.stdout).not.toContain('setup ran');

    // A snapshot that is gone (expired and collected): the turn fails and says why.
    const other = best.attempts[0]!;
    execFileSync('docker', ['image', 'rm', '-f', other.snapshotImage!], { stdio: 'ignore' });
    expect((await berth('task', 'pick', best.id, other.id)).code).toBe(0);
    const expired = await berth(
      'task',
      'followup',
      best.id,
      '--command',
      'true',
      '--wait',
      '--json',
    );
    expect(expired.code).not.toBe(0);
    const failedTurn = (JSON.parse(expired.stdout) as TaskJson).attempts.at(-1);
    expect(failedTurn?.status).toBe('failed');
    expect(failedTurn?.error).toContain(`the snapshot of attempt ${other.id}`);
    expect(failedTurn?.error).toContain('is gone');
  });
});
