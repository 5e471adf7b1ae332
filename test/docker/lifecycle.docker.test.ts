import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_NOT_BUILT } from '../../src/lifecycle/run-local.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import {
  lifecycleRunOptions,
  lifecycleTestImage,
  makeSampleRepository,
  runJson,
  writeLifecycleEnvFile,
} from './lifecycle-support.js';

/**
 * The task lifecycle end to end on a real Docker engine, through `berth run` (runLocal) with its
 * embedded SQLite store: cache build and reuse, maintenance, exports replay, secrets hygiene,
 * services, failures, concurrency of attempts, and the JSON result.
 */

const SECRET = 'sup3r-s3cret-value-42';
const instance = `lctest-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;

beforeAll(() => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-lifecycle-'));
});

afterAll(() => {
  const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
  const leftovers = docker('ps', '-aq', '--filter', `label=berth.instance=${instance}`);
  const networks = docker('network', 'ls', '-q', '--filter', `label=berth.instance=${instance}`);
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
  // Every attempt removes its sandbox and network, whatever way it ended.
  expect(leftovers).toBe('');
  expect(networks).toBe('');
});

function envFile(name: string, body: string): string {
  return writeLifecycleEnvFile(work, name, repo.dir, body);
}

const base = () => lifecycleRunOptions({ work, instance, image, apiToken: SECRET });

// Run in the agent phase: reports what the agent can see, then changes the working tree.
const PROBE = [
  'echo "tool=${TOOL_HOME-unset} mode=${APP_MODE-unset}"',
  'echo "setup-runs=$(wc -l < /root/setup-runs)"',
  'test -f /root/maintenance-ran && echo maintenance=yes || echo maintenance=no',
  'cat /tmp/service-ready',
  'exec 3<>/dev/tcp/127.0.0.1/8080 && read -r reply <&3 && echo "web=$reply"',
  // The secret is searched for without writing it in this command: it is rebuilt at run time.
  's="sup3r-s3cret-$(printf value)-42"',
  'echo "env-hits=$(env | grep -c -- "$s")"',
  'echo "proc-hits=$(cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n" | grep -c -- "$s")"',
  'echo "file-hits=$(grep -rlsF -- "$s" /root /etc /tmp /workspace /var/lib/berth | wc -l)"',
  './test.sh',
  'echo change >> README.md && mkdir -p build && echo ignored > build/out && echo new > NEW.txt',
  'printf "\\x00\\x01\\x02" > blob.bin',
].join('\n');

describe('berth run on a real Docker engine', () => {
  it('builds the cache once, reuses it with maintenance, replays exports and keeps secrets out of the agent phase', async () => {
    const file = envFile(
      'lc-main',
      [
        'env: { APP_MODE: test }',
        'secrets: [API_TOKEN]',
        'setup: |',
        '  echo "setup sees the token: $API_TOKEN"',
        '  echo run >> /root/setup-runs',
        '  export TOOL_HOME=/opt/tool',
        '  test -n "$API_TOKEN"',
        'maintenance: |',
        '  echo "maintenance sees ${#API_TOKEN} characters"',
        '  touch /root/maintenance-ran',
        'services:',
        '  - name: marker',
        '    command: echo up > /tmp/service-ready; exec sleep 600',
        '    ready: { command: test -f /tmp/service-ready }',
        '  - name: web',
        // A one-line TCP server (perl is in the minimal image): answers "pong" to each connection.
        "    command: perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => q(127.0.0.1:8080), Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) { print $c qq(pong\\n); close $c }'",
        '    ready: { port: 8080 }',
        '',
      ].join('\n'),
    );

    const first = await runJson({ ...base(), envFile: file, command: PROBE });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('cache miss: no cache entry yet');
    expect(first.stderr).toContain('setup sees the token: ***');
    expect(first.stderr).not.toContain(SECRET);
    expect(first.stderr).toContain('setup script exported TOOL_HOME');
    expect(first.stderr).not.toContain('== maintenance');

    // The result object keeps the documented names.
    expect(Object.keys(first.result)).toEqual(['task', 'attempts']);
    expect(first.result.task.id).toMatch(/^task_/);
    expect(first.result.task.status).toBe('succeeded');
    const attempt = first.result.attempts[0];
    expect(attempt?.id).toMatch(/^att_/);
    expect(Object.keys(attempt ?? {})).toEqual(
      expect.arrayContaining(['id', 'status', 'diff', 'message', 'error', 'commands']),
    );
    expect(Object.keys(attempt?.commands[0] ?? {})).toEqual(
      expect.arrayContaining(['command', 'exitCode', 'output']),
    );
    expect(attempt).toMatchObject({
      status: 'succeeded',
      error: null,
      cacheHit: false,
    });
    expect(attempt?.commands).toHaveLength(1);
    const output = attempt?.commands[0]?.output ?? '';
    expect(attempt?.commands[0]?.exitCode).toBe(0);
    expect(output).toContain('tool=/opt/tool mode=test');
    expect(output).toContain('setup-runs=1');
    expect(output).toContain('maintenance=no');
    expect(output).toContain('up');
    expect(output).toContain('web=pong');
    expect(output).toContain('env-hits=0');
    expect(output).toContain('proc-hits=0');
    expect(output).toContain('file-hits=0');
    expect(output).toContain('tests passed');
    // The diff: new and changed files, not ignored ones, binary files marked.
    expect(attempt?.diff).toContain('+change');
    expect(attempt?.diff).toContain('NEW.txt');
    expect(attempt?.diff).not.toContain('build/out');
    expect(attempt?.diff).toContain('GIT binary patch');
    expect(attempt?.files).toEqual(
      expect.arrayContaining([
        { path: 'blob.bin', added: null, removed: null, binary: true },
        { path: 'NEW.txt', added: 1, removed: 0, binary: false },
      ]),
    );
    expect(attempt?.baseCommit).toBe(repo.mainCommit);

    // Second run, on the feature branch: from the cache, setup skipped, maintenance run.
    const second = await runJson({ ...base(), envFile: file, command: PROBE, branch: 'feature' });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('cache hit');
    expect(second.stderr).not.toContain('== setup');
    expect(second.stderr).toContain('== maintenance');
    expect(second.stderr).toContain('maintenance sees 21 characters');
    expect(second.stderr).toContain('replaying variables exported by setup: TOOL_HOME');
    const again = second.result.attempts[0];
    expect(again?.cacheHit).toBe(true);
    expect(again?.baseCommit).toBe(repo.featureCommit);
    const out2 = again?.commands[0]?.output ?? '';
    expect(out2).toContain('tool=/opt/tool mode=test');
    expect(out2).toContain('setup-runs=1');
    expect(out2).toContain('maintenance=yes');
    expect(out2).toContain('up');
    expect(out2).toContain('web=pong');
    expect(out2).toContain('env-hits=0');
    expect(out2).toContain('proc-hits=0');
    expect(out2).toContain('file-hits=0');

    // Changing the setup script rebuilds, and the log says why.
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8').replace('echo run >> /root/setup-runs', 'echo run >> /root/setup-runs; echo v2')}`,
    );
    const third = await runJson({ ...base(), envFile: file, command: 'true' });
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toContain('cache rebuilt because: setup script changed');
    expect(third.stderr).toContain('== setup');
  });

  it('fails a setup with the line, command and exit code, warns where a secret was written, and makes no cache entry', async () => {
    const file = envFile(
      'lc-broken',
      [
        'secrets: [API_TOKEN]',
        'setup: |',
        '  echo "//registry.example/:_authToken=$API_TOKEN" > ~/.npmrc',
        '  echo preparing',
        '  ls /no/such/dir',
        '  echo never',
        '',
      ].join('\n'),
    );
    const run = await runJson({ ...base(), envFile: file, command: 'true' });
    expect(run.code).toBe(1);
    const attempt = run.result.attempts[0];
    expect(run.result.task.status).toBe('failed');
    expect(attempt?.status).toBe('failed');
    expect(attempt?.error).toBe(
      'setup script failed at line 3: `ls /no/such/dir` exited with code 2',
    );
    expect(attempt?.errorDetails).toMatchObject({
      reason: 'setup',
      line: 3,
      command: 'ls /no/such/dir',
      exitCode: 2,
    });
    expect(String(attempt?.errorDetails?.logTail)).toContain('preparing');
    expect(run.stderr).toContain('wrote a secret value into 1 file(s): /root/.npmrc');
    expect(run.stderr).not.toContain(SECRET);
    // No cache entry: the next run sets up again.
    const next = await runJson({ ...base(), envFile: file, command: 'true' });
    expect(next.stderr).toContain('cache miss: no cache entry yet');
  });

  it('stops a setup script that hangs at its time limit', async () => {
    const file = envFile(
      'lc-hang',
      'setup:\n  script: |\n    echo started\n    sleep 300\n  timeoutMs: 2000\n',
    );
    const run = await runJson({ ...base(), envFile: file, command: 'true' });
    expect(run.code).toBe(1);
    expect(run.result.attempts[0]?.error).toBe('setup script timed out after 2 s');
    expect(run.result.attempts[0]?.errorDetails).toMatchObject({ reason: 'setup', timedOut: true });
  });

  it('runs three attempts of a new environment with exactly one setup', async () => {
    const file = envFile('lc-three', 'setup: |\n  echo one-setup-run\n  sleep 1\n');
    const run = await runJson({
      ...base(),
      envFile: file,
      command: 'echo hello from $HOSTNAME',
      attempts: 3,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.result.attempts).toHaveLength(3);
    expect(run.result.attempts.every((a) => a.status === 'succeeded')).toBe(true);
    expect(run.stderr.match(/one-setup-run/g)).toHaveLength(1);
    expect(run.result.attempts.map((a) => a.cacheHit).sort()).toEqual([false, true, true]);
  });

  it('refuses a prompt without a command, and fails clearly on a branch that does not exist', async () => {
    const file = envFile('lc-bad', '');
    const prompt = await runJson({ ...base(), envFile: file, prompt: 'fix the tests' });
    expect(prompt.code).toBe(2);
    expect(prompt.stderr).toContain(AGENT_NOT_BUILT);
    const branch = await runJson({
      ...base(),
      envFile: file,
      command: 'true',
      branch: 'no-such-branch',
    });
    expect(branch.code).toBe(1);
    expect(branch.result.attempts[0]?.error).toContain(
      'could not fetch the branch "no-such-branch"',
    );
  });

  it('names the command that builds a base image that is not built', async () => {
    const file = envFile('lc-no-image', '');
    const run = await runJson({
      ...base(),
      envFile: file,
      command: 'true',
      resolveImage: () => `berth/universal:not-built-${process.pid}`,
    });
    expect(run.code).toBe(1);
    expect(run.result.attempts[0]?.error).toContain('build it with `berth image build universal`');
  });
});
