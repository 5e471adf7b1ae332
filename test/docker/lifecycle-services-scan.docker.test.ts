import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import {
  lifecycleRunOptions,
  lifecycleTestImage,
  makeSampleRepository,
  runJson,
  writeLifecycleEnvFile,
} from './lifecycle-support.js';

/**
 * Two lifecycle faults a user must be told about, through `berth run --json` on a real engine: a
 * service that never becomes ready fails the attempt with its log tail, and a maintenance script
 * that writes a secret into a file is warned about with the file's path; a setup script that writes
 * a secret into the repository (`.npmrc`) never gets it into the stored diff, uncached or cached.
 */

const SECRET = 'maint-s3cret-7d1e-value';
const DEPLOY_KEY = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACDqZx0cD1kXbW0Qm6mJc9Hq0bGQm9cWlQ3yA1Qd0lH2QwAAAJgm2r8SJtq/',
  '-----END OPENSSH PRIVATE KEY-----',
].join('\n');
const instance = `lcscan-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;

function envFile(name: string, lines: string[]): string {
  return writeLifecycleEnvFile(work, name, repo.dir, [...lines, ''].join('\n'));
}

const base = () => lifecycleRunOptions({ work, instance, image, apiToken: SECRET });

beforeAll(() => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-lcscan-'));
});

afterAll(() => {
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('lifecycle faults (docker)', () => {
  it('fails the attempt with the log tail of a service that never becomes ready', async () => {
    const file = envFile('never-ready', [
      'services:',
      '  - name: stuck',
      '    command: echo "stuck service starting"; echo "bound to nothing"; exec sleep 600',
      '    ready: { port: 9099 }',
      '    timeoutMs: 3000',
    ]);
    const run = await runJson({ ...base(), envFile: file, command: 'echo never-ran' });
    expect(run.code).toBe(1);
    const attempt = run.result.attempts[0];
    expect(attempt?.status).toBe('failed');
    expect(attempt?.error).toBe('service "stuck" did not become ready within 3 s');
    expect(attempt?.errorDetails).toMatchObject({ reason: 'services', service: 'stuck' });
    expect(String(attempt?.errorDetails?.logTail)).toContain('bound to nothing');
    expect(run.stderr).toContain('bound to nothing');
    expect(attempt?.commands ?? []).toEqual([]);
  }, 300_000);

  it('warns with the path when the maintenance script writes a secret into a file; a secret setup wrote into the repository stays out of the diff', async () => {
    const file = envFile('maint-scan', [
      'secrets: [API_TOKEN, DEPLOY_KEY]',
      'setup: |',
      '  echo setup done',
      '  echo "//npm.example.invalid/:_authToken=$API_TOKEN" > .npmrc',
      // base64 wraps at 76 columns: the value's encoded form is split by a line break, and each
      // line of the diff starts with "+".
      `  printf '${'a'.repeat(50)}%s' "$API_TOKEN" | base64 > auth.b64`,
      // A multi-line secret (a deploy key): every line of the diff starts with "+".
      '  printf "%s\\n" "$DEPLOY_KEY" > deploy_key',
      'maintenance: |',
      '  echo "//npm.example.invalid/:_authToken=$API_TOKEN" > /root/.npmrc-maintenance',
    ]);
    const secrets = (name: string) =>
      name === 'API_TOKEN' ? SECRET : name === 'DEPLOY_KEY' ? DEPLOY_KEY : undefined;
    const first = await runJson({
      ...base(),
      lookupSecret: secrets,
      envFile: file,
      command: 'true',
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toContain('maintenance script wrote a secret value');
    const second = await runJson({
      ...base(),
      lookupSecret: secrets,
      envFile: file,
      command: 'true',
    });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('== maintenance');
    // The scan after maintenance names the file maintenance wrote and removes it (outside the
    // workspace). It may also name the workspace files setup wrote (the checkout of a cached
    // start touches them, so they count as changed): those stay, and the results mask them.
    expect(second.stderr).toMatch(
      /the maintenance script wrote a secret value into \d+ file\(s\): \/root\/\.npmrc-maintenance/,
    );
    expect(second.stderr).toContain('removed /root/.npmrc-maintenance');
    expect(second.stderr).not.toContain(SECRET);
    // The .npmrc setup wrote into the repository, on the uncached and the cached start alike.
    for (const run of [first, second]) {
      const attempt = run.result.attempts[0];
      expect(attempt?.secretFiles).toEqual(['.npmrc', 'auth.b64', 'deploy_key']);
      for (const line of DEPLOY_KEY.split('\n').slice(1, -1))
        expect(JSON.stringify(run.result)).not.toContain(line);
      expect(attempt?.diff).toContain('+//npm.example.invalid/:_authToken=***');
      expect(JSON.stringify(run.result)).not.toContain(SECRET);
      expect(run.stderr).toContain('the diff holds a secret value of the environment in .npmrc');
    }
  }, 300_000);
});
