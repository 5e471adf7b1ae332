import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';

/**
 * `berth env diff NAME [--branch B]` (issue 16 item 5) through a real server and CLI: the stored
 * environment against its repository file, field by field, on the default branch and on another.
 */

let server: ServeHandle;
let repo: string;
let auth: string[];

function git(...args: string[]): void {
  execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args]);
}

beforeAll(async () => {
  server = await startServe(['--allow-local-repos']);
  auth = ['--url', server.url, '--token', server.adminToken];
  const dir = tempDir('envdiff');
  repo = join(dir, 'repo');
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  mkdirSync(join(repo, '.berth'));
  writeFileSync(
    join(repo, '.berth', 'environment.yaml'),
    'setup: npm ci\nenv:\n  NODE_ENV: test\nverify: npm test\n',
  );
  git('add', '-A');
  git('commit', '-qm', 'one');
  git('checkout', '-q', '-b', 'next');
  writeFileSync(join(repo, '.berth', 'environment.yaml'), 'setup: pnpm install\n');
  git('commit', '-qam', 'next');
  git('checkout', '-q', 'main');
  const file = join(dir, 'shop.yaml');
  writeFileSync(
    file,
    `name: shop\nrepository:\n  url: ${repo}\n  defaultBranch: main\n  config: .berth/environment.yaml\nimage: minimal\nenv:\n  NODE_ENV: production\nverify: npm test\n`,
  );
  const created = await runBerth(['env', 'create', '--file', file, ...auth]);
  if (created.code !== 0) throw new Error(created.stderr);
});

afterAll(async () => {
  await server?.stop();
});

describe('berth env diff', () => {
  it('shows each field: only in the file, only in the environment, in both (the environment wins), the same', async () => {
    const r = await runBerth(['env', 'diff', 'shop', ...auth]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^shop \(stored, <\) against \.berth\/environment\.yaml on main at [0-9a-f]{12} \(>\)$/,
    );
    expect(lines.slice(1)).toEqual([
      '< image (not in the file)',
      '    < minimal',
      '> setup (from the file)',
      '    > npm ci',
      "! env (the environment's wins)",
      '    < NODE_ENV: production',
      '    > NODE_ENV: test',
      '= verify',
    ]);
  });

  it('--branch reads the file on that branch', async () => {
    const r = await runBerth(['env', 'diff', 'shop', '--branch', 'next', '--json', ...auth]);
    expect(r.code, r.stderr).toBe(0);
    const view = JSON.parse(r.stdout) as {
      branch: string;
      fields: Array<{ field: string; state: string; file?: unknown }>;
    };
    expect(view.branch).toBe('next');
    expect(view.fields.find((f) => f.field === 'setup')).toEqual({
      field: 'setup',
      state: 'file',
      file: 'pnpm install',
    });
    expect(view.fields.find((f) => f.field === 'env')?.state).toBe('environment');
  });

  it('refuses a branch that is not there', async () => {
    const missing = await runBerth(['env', 'diff', 'shop', '--branch', 'nope', ...auth]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(
      /repository\.config: \.berth\/environment\.yaml: the repository has no branch "nope"/,
    );
  });
});
