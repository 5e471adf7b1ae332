import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  runLocal,
  type RunLocalOptions,
  type RunLocalResult,
} from '../../src/lifecycle/run-local.js';

/**
 * Helpers for the lifecycle tests on a real Docker engine. The sandbox image is Berth's `minimal`
 * image (BERTH_TEST_IMAGE may name another image with bash and git while the builder is missing).
 */
export function lifecycleTestImage(): string {
  const image = process.env.BERTH_TEST_IMAGE ?? 'berth/minimal:latest';
  try {
    execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
  } catch {
    throw new Error(
      `the test image ${image} is missing: build it with "berth image build minimal" (or set BERTH_TEST_IMAGE)`,
    );
  }
  return image;
}

function git(dir: string, ...args: string[]): string {
  return execFileSync(
    'git',
    ['-C', dir, '-c', 'user.name=Test', '-c', 'user.email=test@berth.example', ...args],
    {
      encoding: 'utf8',
    },
  ).trim();
}

/** A small shell project with a test script, on `main`, plus a `feature` branch. */
export function makeSampleRepository(): { dir: string; mainCommit: string; featureCommit: string } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-sample-repo-'));
  git(dir, 'init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'README.md'), '# sample\n');
  writeFileSync(join(dir, '.gitignore'), 'build/\n');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'add.sh'), 'add() { echo $(( $1 + $2 )); }\n');
  writeFileSync(
    join(dir, 'test.sh'),
    '#!/bin/bash\nset -e\nsource src/add.sh\n[ "$(add 2 3)" = 5 ] && echo "tests passed"\n',
    { mode: 0o755 },
  );
  git(dir, 'add', '-A');
  git(dir, 'commit', '-qm', 'initial');
  const mainCommit = git(dir, 'rev-parse', 'HEAD');
  git(dir, 'checkout', '-q', '-b', 'feature');
  writeFileSync(join(dir, 'FEATURE'), 'feature branch\n');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-qm', 'feature');
  const featureCommit = git(dir, 'rev-parse', 'HEAD');
  git(dir, 'checkout', '-q', 'main');
  return { dir, mainCommit, featureCommit };
}

/**
 * A lifecycle test's environment file `name`.yaml in `dir`: `repository` on the minimal image,
 * then `body` (the rest of the YAML).
 */
export function writeLifecycleEnvFile(
  dir: string,
  name: string,
  repository: string,
  body: string,
): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `name: ${name}\nrepository: ${repository}\nimage: minimal\n${body}`);
  return file;
}

/**
 * The options every `berth run` of a lifecycle test shares: its data under `work`, its instance,
 * the test image, and `apiToken` as the secret API_TOKEN.
 */
export function lifecycleRunOptions(world: {
  work: string;
  instance: string;
  image: string;
  apiToken: string;
}): Pick<RunLocalOptions, 'dataDir' | 'instance' | 'resolveImage' | 'lookupSecret'> {
  return {
    dataDir: join(world.work, 'data'),
    instance: world.instance,
    resolveImage: () => world.image,
    lookupSecret: (name: string) => (name === 'API_TOKEN' ? world.apiToken : undefined),
  };
}

export interface LocalRun {
  code: number;
  result: RunLocalResult;
  stderr: string;
}

/**
 * Runs `berth run --json` in-process and parses its result. The setup network's allowances are
 * `BERTH_SETUP_ALLOW` (as `berth run` reads them; see test/support/site-setup-allow.ts) unless
 * the options give their own.
 */
export async function runJson(options: RunLocalOptions): Promise<LocalRun> {
  let stdout = '';
  let stderr = '';
  const setupAllow = (process.env.BERTH_SETUP_ALLOW ?? '').split(',').filter((r) => r !== '');
  const code = await runLocal(
    { setupAllow, ...options, json: true },
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) },
  );
  return { code, result: JSON.parse(stdout) as RunLocalResult, stderr };
}
