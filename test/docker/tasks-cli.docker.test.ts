import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH_BIN, runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/** `berth exec` and `berth task …` through a real server, on the real Docker engine. */

const SECRET = 'tok-7c1f-tasks-cli-canary';

interface AttemptJson {
  id: string;
  status: string;
  cacheHit: boolean | null;
  diff: string;
  message: string;
  error: string | null;
  commands: Array<{ command: string; exitCode: number; output: string }>;
}
interface TaskJson {
  id: string;
  status: string;
  attempts: AttemptJson[];
}

let server: ServeHandle;
let auth: string[];
let repo: ReturnType<typeof makeSampleRepository>;

async function berth(...args: string[]) {
  return runBerth([...args, ...auth]);
}

async function execJson(...args: string[]): Promise<TaskJson> {
  const r = await berth('exec', '--env', 'svc', '--wait', '--json', ...args);
  expect(r.stdout, r.stderr).not.toBe('');
  return JSON.parse(r.stdout) as TaskJson;
}

beforeAll(async () => {
  const image = lifecycleTestImage();
  repo = makeSampleRepository();
  server = await startServe(['--allow-local-repos']);
  auth = ['--url', server.url, '--token', server.adminToken];
  const file = join(tempDir('tasks-cli'), 'svc.yaml');
  writeFileSync(
    file,
    `name: svc
repository: ${repo.dir}
image: ${image}
secrets: [API_TOKEN]
setup: |
  echo "setup ran; token length \${#API_TOKEN}"
  export GREETING=hello
`,
  );
  const created = await berth('env', 'create', '--file', file, '--secret', `API_TOKEN=${SECRET}`);
  expect(created.code, created.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await server?.stop();
});

describe('tasks through the server (docker)', () => {
  it('runs a command as the agent phase, then reuses the cache', async () => {
    const first = await execJson(
      '--command',
      'echo "$GREETING from $(pwd)"; ./test.sh; echo "secret=[${API_TOKEN:-}]"',
    );
    expect(first.status).toBe('succeeded');
    const [attempt] = first.attempts;
    expect(attempt?.cacheHit).toBe(false);
    const run = attempt?.commands.find((c) => c.command.includes('GREETING'));
    expect(run?.exitCode).toBe(0);
    expect(run?.output).toContain('hello from /workspace');
    expect(run?.output).toContain('tests passed');
    expect(run?.output).toContain('secret=[]'); // secrets are gone in the agent phase

    const second = await execJson('--command', 'true');
    expect(second.attempts[0]?.cacheHit).toBe(true);

    const logs = await berth('task', 'logs', first.id);
    expect(logs.stdout).toContain('setup ran; token length');
    expect(logs.stdout).toContain('== agent');
    expect(logs.stdout + JSON.stringify(first)).not.toContain(SECRET);
  });

  it('prints a diff that git apply accepts, and follows a log to its end', async () => {
    const task = await execJson(
      '--command',
      'echo changed >> README.md && printf "new\\n" > added.txt && mkdir -p build && touch build/ignored',
    );
    expect(task.status).toBe('succeeded');
    const diff = await berth('task', 'diff', task.id);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toContain('+++ b/added.txt');
    expect(diff.stdout).not.toContain('build/ignored');
    const clone = tempDir('apply');
    execFileSync('git', ['clone', '-q', repo.dir, clone]);
    const patch = join(clone, '..', `${task.id}.patch`);
    writeFileSync(patch, diff.stdout);
    execFileSync('git', ['-C', clone, 'apply', '--check', patch]);

    const follow = await berth('task', 'logs', task.id, '--follow');
    expect(follow.code).toBe(0);
    expect(follow.stdout).toContain('== succeeded');
  });

  it('checks out a commit with exec --sha --wait --json', async () => {
    const task = await execJson('--sha', repo.featureCommit, '--command', 'cat FEATURE');
    expect(task.status).toBe('succeeded');
    expect(task.attempts[0]?.commands[0]?.output).toContain('feature branch');
  });

  it('follows the log of an attempt that is still running: output arrives before it ends', async () => {
    const submitted = await berth(
      'exec',
      '--env',
      'svc',
      '--command',
      'echo first-line; sleep 6; echo last-line',
      '--json',
    );
    const task = JSON.parse(submitted.stdout) as TaskJson;
    const follower = spawn(
      process.execPath,
      [BERTH_BIN, 'task', 'logs', task.id, '--follow', ...auth],
      { env: { ...process.env, BERTH_URL: undefined, BERTH_TOKEN: undefined } },
    );
    let stdout = '';
    let firstLineAt = 0;
    let phaseWhenSeen = '';
    follower.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (firstLineAt === 0 && stdout.includes('first-line')) {
        firstLineAt = Date.now();
        void berth('task', 'show', task.id, '--json').then((r) => {
          phaseWhenSeen = (JSON.parse(r.stdout) as { status: string }).status;
        });
      }
    });
    const code = await new Promise<number | null>((resolve) => follower.on('close', resolve));
    const endedAt = Date.now();
    expect(code).toBe(0);
    expect(stdout).toContain('last-line');
    expect(stdout).toContain('== succeeded');
    expect(firstLineAt).toBeGreaterThan(0);
    // The first line came while the command still slept (about 6 s before the end).
    expect(endedAt - firstLineAt).toBeGreaterThan(3_000);
    expect(phaseWhenSeen).toBe('running');
  });

  it('shows attempts side by side and runs several attempts', async () => {
    const task = await execJson('--attempts', '2', '--command', 'echo attempt');
    expect(task.attempts).toHaveLength(2);
    expect(task.attempts.every((a) => a.status === 'succeeded')).toBe(true);
    const show = await berth('task', 'show', task.id);
    for (const a of task.attempts) expect(show.stdout).toContain(a.id);
  });

  it('cancels a running task within seconds', async () => {
    const submitted = await berth('exec', '--env', 'svc', '--command', 'sleep 300', '--json');
    const task = JSON.parse(submitted.stdout) as TaskJson;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const show = JSON.parse(
        (await berth('task', 'show', task.id, '--json')).stdout,
      ) as TaskJson & { attempts: Array<{ phase: string }> };
      // A task whose attempt has left the queue is running, not queued.
      if (show.attempts[0]?.status === 'running') expect(show.status).toBe('running');
      if (show.attempts[0]?.phase === 'agent') break;
      if (Date.now() > deadline) throw new Error('the task never reached the agent phase');
      await new Promise((r) => setTimeout(r, 200));
    }
    // `task cancel` prints the status the task ended with, once its attempt has stopped.
    const asked = Date.now();
    const cancelled = await berth('task', 'cancel', task.id);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toBe(`task ${task.id}: cancelled\n`);
    expect(Date.now() - asked).toBeLessThan(5_000);
    const show = JSON.parse((await berth('task', 'show', task.id, '--json')).stdout) as TaskJson;
    expect(show.status).toBe('cancelled');
    expect(show.attempts[0]?.status).toBe('cancelled');
    // The same word in the human view: the attempt is cancelled, not failed.
    const human = await berth('task', 'show', task.id);
    expect(human.stdout).toMatch(new RegExp(`^${show.attempts[0]?.id} cancelled: `, 'm'));
    expect(human.stdout).not.toMatch(/failed/);
  });

  it('tests an environment: the lifecycle up to lockdown, then the command', async () => {
    const r = await berth('env', 'test', 'svc', '--command', 'echo $GREETING; command -v git');
    expect(r.code, r.stderr).toBe(0);
    // The command's own output on stdout, the lifecycle's progress on stderr.
    expect(r.stdout).toContain('hello');
    expect(r.stdout).toMatch(/\/git\b/);
    expect(r.stderr).toMatch(/^cache (hit|miss|waited): /m);
    expect(r.stderr).toContain('== lockdown');
    expect(r.stderr).toContain('== agent');
    expect(r.stdout + r.stderr).not.toContain(SECRET);

    const failing = await berth('env', 'test', 'svc', '--command', 'echo about to fail; exit 7');
    expect(failing.code).toBe(7);
    expect(failing.stdout).toContain('about to fail');
  });

  it('tests an environment whose setup fails: exit code 1 and the reason', async () => {
    const file = join(tempDir('tasks-cli-broken'), 'broken.yaml');
    writeFileSync(
      file,
      `name: broken-setup
repository: ${repo.dir}
image: ${lifecycleTestImage()}
setup: |
  echo preparing
  missing-tool --install
`,
    );
    expect((await berth('env', 'create', '--file', file)).code).toBe(0);
    const r = await berth('env', 'test', 'broken-setup', '--command', 'echo never');
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('never');
    expect(r.stderr).toContain('== setup');
    expect(r.stderr).toContain('preparing');
    expect(r.stderr).toMatch(/berth: .*setup.*missing-tool/s);
  });

  it('shows and resets the cache', async () => {
    const show = JSON.parse((await berth('env', 'cache', 'show', 'svc', '--json')).stdout) as {
      entries: Array<{ key: string; live: boolean; commit: string }>;
    };
    expect(show.entries.length).toBeGreaterThan(0);
    expect(show.entries[0]?.live).toBe(true);
    expect(show.entries[0]?.commit).toBe(repo.mainCommit);
    const reset = JSON.parse((await berth('env', 'cache', 'reset', 'svc', '--json')).stdout) as {
      removed: number;
    };
    expect(reset.removed).toBeGreaterThan(0);
    const after = await execJson('--command', 'true');
    expect(after.attempts[0]?.cacheHit).toBe(false);
  });

  it('refuses bad input clearly', async () => {
    const prompt = await berth('exec', '--env', 'svc', 'fix the tests');
    expect(prompt.code).toBe(2);
    expect(prompt.stderr).toMatch(/--command/);
    const both = await berth(
      'exec',
      '--env',
      'svc',
      '--branch',
      'main',
      '--sha',
      repo.mainCommit,
      '--command',
      'true',
    );
    expect(both.code).toBe(2);
    const badBranch = await berth(
      'exec',
      '--env',
      'svc',
      '--branch',
      '--upload-pack=x',
      '--command',
      'true',
    );
    expect(badBranch.code).toBe(2);
    const missingEnv = await berth('exec', '--env', 'nope', '--command', 'true');
    expect(missingEnv.code).toBe(1);
    expect(missingEnv.stderr).toMatch(/environment "nope" not found/);
    const missingTask = await berth('task', 'show', 'task_doesnotexist');
    expect(missingTask.code).toBe(1);
  });

  it('exec --wait: a failed verify exits 0, 3 with --require-verify; env test runs no verify', async () => {
    const file = join(tempDir('tasks-cli-verify'), 'verified.yaml');
    writeFileSync(
      file,
      `name: verified\nrepository: ${repo.dir}\nimage: ${lifecycleTestImage()}\nverify: test -f VERIFIED\n`,
    );
    expect((await berth('env', 'create', '--file', file)).code).toBe(0);
    const exec = (...args: string[]) => berth('exec', '--env', 'verified', '--wait', ...args);
    const unverified = await exec('--command', 'true');
    expect(unverified.code, unverified.stderr).toBe(0);
    expect(unverified.stdout).toMatch(/failed \(1\)/); // the VERIFY column
    const required = await exec('--command', 'true', '--require-verify');
    expect(required.code, required.stderr).toBe(3);
    expect(required.stderr).toMatch(
      /verification is required \(--require-verify\) and failed for att_/,
    );
    const verified = await exec('--command', 'touch VERIFIED', '--require-verify');
    expect(verified.code, verified.stderr).toBe(0);
    // Refused before anything runs: no --wait, or an environment without verify.
    const noWait = await berth(
      'exec',
      '--env',
      'verified',
      '--require-verify',
      '--command',
      'true',
    );
    expect(noWait.code).toBe(2);
    const noVerify = await berth(
      'exec',
      '--env',
      'svc',
      '--wait',
      '--require-verify',
      '--command',
      'true',
    );
    expect(noVerify.code).toBe(2);
    expect(noVerify.stderr).toContain('has no verify command');

    // env test: up to lockdown and the command, not verify.
    const tested = await berth('env', 'test', 'verified', '--command', 'echo tested');
    expect(tested.code, tested.stderr).toBe(0);
    expect(tested.stdout).toContain('tested');
    expect(tested.stderr).toContain('== agent');
    expect(tested.stderr).not.toContain('verifying:');
    expect(tested.stderr).not.toContain('test -f VERIFIED');
  });

  it('env test -it without a terminal says so and starts nothing', async () => {
    const count = async () =>
      (
        JSON.parse((await berth('task', 'list', '--limit', '100', '--json')).stdout) as {
          tasks: unknown[];
        }
      ).tasks.length;
    const before = await count();
    const r = await berth('env', 'test', 'svc', '-it');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs a terminal/);
    expect(await count()).toBe(before);
  });

  it('task logs follows every attempt (prefixed), --attempt one, the latest turn; a closed pipe is quiet', async () => {
    const submitted = await berth(
      'exec',
      '--env',
      'svc',
      '--attempts',
      '2',
      '--command',
      'seq 1 30000',
    );
    expect(submitted.code, submitted.stderr).toBe(0);
    const taskId = /submitted task (task_\S+) /.exec(submitted.stdout)?.[1] ?? '';
    expect(submitted.stdout).toContain(
      `follow them with: berth task logs ${taskId} --follow (each line prefixed with its attempt`,
    );
    const follow = await berth('task', 'logs', taskId, '--follow');
    expect(follow.code, follow.stderr).toBe(0);
    const view = JSON.parse((await berth('task', 'show', taskId, '--json')).stdout) as TaskJson;
    expect(view.attempts).toHaveLength(2);
    for (const a of view.attempts) {
      expect(follow.stdout).toContain(`[${a.id}] == succeeded`);
      expect(follow.stdout).toContain(`[${a.id}] 30000`);
    }
    const one = await berth('task', 'logs', taskId, '--attempt', view.attempts[1]?.id ?? '');
    expect(one.stdout).toContain('== succeeded');
    expect(one.stdout).not.toContain('[att_');

    // `task logs T | head -2`: two lines, no stack trace, the status of a closed pipe.
    const quoted = [process.execPath, BERTH_BIN, 'task', 'logs', taskId, ...auth]
      .map((a) => `'${a}'`)
      .join(' ');
    const piped = spawnSync(
      'bash',
      ['-c', `${quoted} | head -2; echo "status=\${PIPESTATUS[0]}" >&2`],
      {
        encoding: 'utf8',
        env: { ...process.env, BERTH_URL: undefined, BERTH_TOKEN: undefined },
      },
    );
    expect(piped.stdout.split('\n').filter((l) => l !== '')).toHaveLength(2);
    expect(piped.stderr).toBe('status=141\n');

    // After a follow-up, the latest turn is what is followed.
    expect((await berth('task', 'pick', taskId, view.attempts[0]?.id ?? '')).code).toBe(0);
    const turn = await berth('task', 'followup', taskId, '--command', 'echo turn-two');
    expect(turn.code, turn.stderr).toBe(0);
    expect(turn.stdout).toContain(`berth task logs ${taskId} --follow`);
    const latest = await berth('task', 'logs', taskId, '--follow');
    expect(latest.stdout).toContain('turn-two');
    expect(latest.stdout).not.toContain('[att_');
    expect(latest.stdout).not.toMatch(/^30000$/m);
  });

  it('a default branch found at create and gone at the cache build: the clone says which branches there are', async () => {
    const bare = join(tempDir('tasks-cli-master'), 'master.git');
    execFileSync('git', ['clone', '-q', '--bare', repo.dir, bare]);
    execFileSync('git', ['-C', bare, 'branch', '-m', 'main', 'master']);
    execFileSync('git', ['-C', bare, 'symbolic-ref', 'HEAD', 'refs/heads/master']);
    const file = join(tempDir('tasks-cli-master-env'), 'renamed.yaml');
    writeFileSync(file, `name: renamed\nrepository: ${bare}\nimage: ${lifecycleTestImage()}\n`);
    expect((await berth('env', 'create', '--file', file)).code).toBe(0);
    const shown = JSON.parse((await berth('env', 'show', 'renamed', '--json')).stdout) as {
      spec: { repository: { defaultBranch: string } };
    };
    expect(shown.spec.repository.defaultBranch).toBe('master');
    execFileSync('git', ['-C', bare, 'branch', '-m', 'master', 'trunk']);
    execFileSync('git', ['-C', bare, 'symbolic-ref', 'HEAD', 'refs/heads/trunk']);
    const r = await berth('exec', '--env', 'renamed', '--wait', '--command', 'true');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'could not clone the repository: the repository has no branch "master" (its branches: feature, trunk; its default branch is "trunk")',
    );
  });

  it('hides tasks from tokens that are not members', async () => {
    const task = await execJson('--command', 'true');
    const made = JSON.parse((await berth('token', 'create', 'outsider', '--json')).stdout) as {
      token: string;
    };
    const other = ['--url', server.url, '--token', made.token];
    const show = await runBerth(['task', 'show', task.id, '--json', ...other]);
    expect((JSON.parse(show.stdout) as { error: { code: string } }).error.code).toBe('not_found');
    const list = await runBerth(['task', 'list', '--json', ...other]);
    expect((JSON.parse(list.stdout) as { tasks: unknown[] }).tasks).toEqual([]);
  });
});
