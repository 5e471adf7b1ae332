import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, tempDir } from '../support/cli.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/** `berth run` through the real binary (bin/berth.js): human output, exit codes, --repo, --sha. */

const instance = `lcrun-${process.pid}`;
let work: string;
let repo: ReturnType<typeof makeSampleRepository>;

function envFile(name: string, lines: string[]): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, [`name: ${name}`, 'image: minimal', ...lines, ''].join('\n'));
  return file;
}

async function berthRun(file: string, ...args: string[]) {
  return await runBerth(['run', '--env-file', file, '--data-dir', join(work, 'data'), ...args], {
    BERTH_INSTANCE: instance,
  });
}

beforeAll(() => {
  lifecycleTestImage();
  work = tempDir('run-cli');
  repo = makeSampleRepository();
});

afterAll(() => {
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('berth run through the real binary (docker)', () => {
  it('prints a human result, checks out --sha, and exits 0; a failing command exits 1', async () => {
    const file = envFile('run-cli', [`repository: ${repo.dir}`]);
    const ok = await berthRun(file, '--sha', repo.featureCommit, '--command', 'cat FEATURE');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^task task_\S+: succeeded$/m);
    expect(ok.stdout).toMatch(/^attempt att_\S+: succeeded$/m);
    expect(ok.stdout).toContain('The command exited with code 0');
    // Progress on stderr, not on stdout.
    expect(ok.stderr).toContain('== agent');
    expect(ok.stdout).not.toContain('== agent');
    expect(ok.stderr).toContain('feature branch');

    const failed = await berthRun(file, '--command', 'echo going down; exit 3');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/^task task_\S+: failed$/m);
    expect(failed.stdout).toMatch(/^attempt att_\S+: failed/m);
    expect(failed.stdout).toContain('The command exited with code 3');
  }, 300_000);

  it("--repo PATH overrides the file's repository, and names one for a file without any", async () => {
    const other = envFile('run-cli-other', [`repository: ${join(work, 'no-such-repository')}`]);
    const overridden = await berthRun(other, '--repo', repo.dir, '--command', './test.sh');
    expect(overridden.code, overridden.stderr).toBe(0);
    expect(overridden.stderr).toContain('tests passed');

    const bare = envFile('run-cli-bare', []);
    const named = await berthRun(bare, '--repo', repo.dir, '--command', './test.sh', '--json');
    expect(named.code, named.stderr).toBe(0);
    const result = JSON.parse(named.stdout) as {
      task: { status: string };
      attempts: Array<{ commands: Array<{ output: string }> }>;
    };
    expect(result.task.status).toBe('succeeded');
    expect(result.attempts[0]?.commands[0]?.output).toContain('tests passed');

    // Without --repo such a file is refused, naming the field.
    const refused = await berthRun(bare, '--command', 'true');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/repository/);
  }, 300_000);

  it('a repository whose default branch is master, no defaultBranch: found and used', async () => {
    const bare = join(work, 'master.git');
    execFileSync('git', ['clone', '-q', '--bare', repo.dir, bare]);
    execFileSync('git', ['-C', bare, 'branch', '-m', 'main', 'master']);
    execFileSync('git', ['-C', bare, 'symbolic-ref', 'HEAD', 'refs/heads/master']);
    const file = envFile('run-cli-master', [`repository: ${bare}`]);
    const ok = await berthRun(file, '--command', 'git rev-parse --abbrev-ref HEAD; ./test.sh');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/^master$/m);
    expect(ok.stderr).toContain('tests passed');
    const named = envFile('run-cli-named', [`repository: { url: ${bare}, defaultBranch: main }`]);
    const refused = await berthRun(named, '--command', 'true');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'the repository has no branch "main" (its branches: feature, master',
    );
  }, 300_000);

  it('a failed verify exits 0 by default, 3 with --require-verify or verifyRequired: true', async () => {
    const verify = 'verify: test -f VERIFIED';
    const file = envFile('run-cli-verify', [`repository: ${repo.dir}`, verify]);
    const unverified = await berthRun(file, '--command', 'true');
    expect(unverified.code, unverified.stderr).toBe(0);
    const required = await berthRun(file, '--command', 'true', '--require-verify');
    expect(required.code, required.stderr).toBe(3);
    expect(required.stderr).toMatch(
      /verification is required \(--require-verify\) and failed for att_/,
    );

    const strict = envFile('run-cli-verify', [
      `repository: ${repo.dir}`,
      verify,
      'verifyRequired: true',
    ]);
    const failing = await berthRun(strict, '--command', 'true', '--json');
    expect(failing.code, failing.stderr).toBe(3);
    const result = JSON.parse(failing.stdout) as {
      attempts: Array<{ status: string; verification: { passed: boolean } }>;
    };
    expect(result.attempts[0]).toMatchObject({
      status: 'succeeded',
      verification: { passed: false },
    });
    const passing = await berthRun(strict, '--command', 'touch VERIFIED');
    expect(passing.code, passing.stderr).toBe(0);

    // Without a verify command, --require-verify is refused before anything runs.
    const none = envFile('run-cli-no-verify', [`repository: ${repo.dir}`]);
    const refused = await berthRun(none, '--command', 'true', '--require-verify');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('has no verify command');
  }, 300_000);
});
