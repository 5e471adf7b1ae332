import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, tempDir } from '../support/cli.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * The "Show" end to end, through the real `berth run --json`: a small Node service with a
 * test suite. Setup installs its dependency from the package registry; the second task starts from
 * the cache, skips setup and runs maintenance; the service started for the tests answers them on
 * both paths; a secret is visible to setup and absent from the agent phase (environment, files,
 * /proc); changing the setup script rebuilds, and the log says why.
 */

const SECRET = 'npm-tok-4f2a-show-canary';
const instance = `lcshow-${process.pid}`;

interface RunJson {
  task: { id: string; status: string };
  attempts: Array<{
    id: string;
    status: string;
    cacheHit: boolean;
    error: string | null;
    commands: Array<{ command: string; exitCode: number; output: string }>;
  }>;
}

let work: string;
let repoDir: string;
let envFile: string;

function git(...args: string[]): void {
  execFileSync(
    'git',
    ['-C', repoDir, '-c', 'user.name=Test', '-c', 'user.email=test@berth.example', ...args],
    { stdio: 'ignore' },
  );
}

/** The sample service: an HTTP server, and a test suite that calls it and uses the dependency. */
function makeServiceRepository(): void {
  git('init', '-q', '-b', 'main');
  writeFileSync(
    join(repoDir, 'package.json'),
    JSON.stringify(
      {
        name: 'sample-service',
        version: '1.0.0',
        private: true,
        scripts: { start: 'node server.js', test: 'node test.js' },
        dependencies: { 'is-number': '7.0.0' },
      },
      null,
      2,
    ),
  );
  writeFileSync(join(repoDir, '.gitignore'), 'node_modules/\n');
  writeFileSync(
    join(repoDir, 'server.js'),
    `const http = require('node:http');
http
  .createServer((req, res) => res.end(JSON.stringify({ value: 42 })))
  .listen(8080, '127.0.0.1');
`,
  );
  writeFileSync(
    join(repoDir, 'test.js'),
    `const isNumber = require('is-number');
fetch('http://127.0.0.1:8080/')
  .then((res) => res.json())
  .then((body) => {
    if (!isNumber(body.value) || body.value !== 42) throw new Error('bad answer ' + JSON.stringify(body));
    console.log('service answered ' + body.value + '; tests passed');
  })
  .catch((error) => {
    console.error('tests failed: ' + error.message);
    process.exit(1);
  });
`,
  );
  git('add', '-A');
  git('commit', '-qm', 'sample service');
}

// The agent phase: the tests, then what the agent can see of the secret. The secret is rebuilt at
// run time, never written in the command itself.
const PROBE = [
  'npm test',
  's="npm-tok-4f2a-$(printf show)-canary"',
  'echo "env-hits=$(env | grep -c -- "$s")"',
  'echo "proc-hits=$(cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n" | grep -c -- "$s")"',
  'echo "file-hits=$(grep -rlsF -- "$s" /root /home /etc /opt /srv /usr/local /tmp /var/tmp /workspace /var/lib/berth | wc -l)"',
  'echo "maintenance-runs=$(cat /root/maintenance-runs 2>/dev/null | wc -l)"',
].join('\n');

async function run(): Promise<{ code: number; result: RunJson; stderr: string }> {
  const r = await runBerth(
    ['run', '--env-file', envFile, '--data-dir', join(work, 'data'), '--command', PROBE, '--json'],
    { NPM_TOKEN: SECRET, BERTH_INSTANCE: instance },
  );
  expect(r.stdout, r.stderr).not.toBe('');
  return { code: r.code, result: JSON.parse(r.stdout) as RunJson, stderr: r.stderr };
}

beforeAll(() => {
  lifecycleTestImage();
  work = tempDir('lifecycle-show');
  repoDir = tempDir('sample-service');
  makeServiceRepository();
  envFile = join(work, 'service.yaml');
  writeFileSync(
    envFile,
    [
      'name: sample-service',
      `repository: ${repoDir}`,
      'image: minimal',
      'versions: { node: "22" }',
      'secrets: [NPM_TOKEN]',
      'setup: |',
      '  test "${#NPM_TOKEN}" -gt 0 && echo "setup sees NPM_TOKEN (${#NPM_TOKEN} characters): $NPM_TOKEN"',
      '  npm install --no-audit --no-fund',
      'maintenance: |',
      '  echo run >> /root/maintenance-runs',
      '  echo "maintenance ran; node_modules has $(ls node_modules | wc -l) package(s)"',
      'services:',
      '  - name: api',
      '    command: node server.js',
      '    ready: { port: 8080 }',
      '    timeoutMs: 60000',
      '',
    ].join('\n'),
  );
});

afterAll(() => {
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repoDir, { recursive: true, force: true });
});

describe('the task lifecycle end to end on a sample service (docker)', () => {
  it('installs from the registry once, reuses the cache with maintenance and the service, keeps the secret out, and rebuilds when setup changes', async () => {
    // First task: no cache; setup installs the dependency from the package registry.
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('cache miss: no cache entry yet');
    expect(first.stderr).toContain('== setup');
    expect(first.stderr).toMatch(/setup sees NPM_TOKEN \(24 characters\): \*\*\*/);
    expect(first.stderr).toMatch(/added 1 package/);
    expect(first.stderr).not.toContain('== maintenance');
    expect(first.stderr).not.toContain(SECRET);
    const cold = first.result.attempts[0];
    expect(cold?.cacheHit).toBe(false);
    const coldOut = cold?.commands[0]?.output ?? '';
    expect(cold?.commands[0]?.exitCode, coldOut).toBe(0);
    expect(coldOut).toContain('service answered 42; tests passed');
    expect(coldOut).toContain('env-hits=0');
    expect(coldOut).toContain('proc-hits=0');
    expect(coldOut).toContain('file-hits=0');
    expect(coldOut).toContain('maintenance-runs=0');

    // Second task: from the cache, no setup, maintenance on the cached path, the service again.
    const second = await run();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/^cache hit: /m);
    expect(second.stderr).not.toContain('== setup');
    expect(second.stderr).not.toContain('setup sees NPM_TOKEN');
    expect(second.stderr).toContain('== maintenance');
    expect(second.stderr).toContain('maintenance ran; node_modules has 1 package(s)');
    expect(second.stderr).toContain('== services');
    expect(second.stderr).not.toContain(SECRET);
    const warm = second.result.attempts[0];
    expect(warm?.cacheHit).toBe(true);
    const warmOut = warm?.commands[0]?.output ?? '';
    expect(warm?.commands[0]?.exitCode, warmOut).toBe(0);
    expect(warmOut).toContain('service answered 42; tests passed');
    expect(warmOut).toContain('env-hits=0');
    expect(warmOut).toContain('proc-hits=0');
    expect(warmOut).toContain('file-hits=0');
    expect(warmOut).toContain('maintenance-runs=1');

    // A changed setup script rebuilds the cache entry, and the log says which part changed.
    writeFileSync(
      envFile,
      readFileSync(envFile, 'utf8').replace(
        '  npm install --no-audit --no-fund',
        '  npm install --no-audit --no-fund --prefer-offline',
      ),
    );
    const third = await run();
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toContain('cache rebuilt because: setup script changed');
    expect(third.stderr).toContain('== setup');
    expect(third.result.attempts[0]?.cacheHit).toBe(false);
    expect(third.result.attempts[0]?.commands[0]?.output).toContain('tests passed');
  }, 600_000);
});
