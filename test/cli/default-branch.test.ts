import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { runGit } from '../support/run-git.js';
import { GitHttpServer } from '../support/git-http-server.js';

/**
 * `repository:` without `defaultBranch`: the repository's HEAD is found and stored when the
 * environment is created or updated; a named branch it does not have is refused, listing the
 * branches it has (issue 20 item 1). A bare repository whose default branch is `master`, as a
 * path and as a file:// URL, through the built CLI and a real server.
 */

let server: ServeHandle;
let auth: string[];
let dir: string;
let bare: string;

interface EnvJson {
  spec: { repository: { url: string; defaultBranch: string } };
}

function file(name: string, text: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, text);
  return path;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on port ${port}`);
}

async function defaultBranchOf(name: string): Promise<string> {
  const shown = await runBerth(['env', 'show', name, '--json', ...auth]);
  expect(shown.code, shown.stderr).toBe(0);
  return (JSON.parse(shown.stdout) as EnvJson).spec.repository.defaultBranch;
}

beforeAll(async () => {
  dir = tempDir('default-branch');
  const work = mkdtempSync(join(tmpdir(), 'berth-master-work-'));
  runGit(work, 'init', '-q', '-b', 'master');
  writeFileSync(join(work, 'README.md'), '# like express: master, no lockfile\n');
  runGit(work, 'add', '-A');
  runGit(work, 'commit', '-qm', 'initial');
  runGit(work, 'branch', '4.x');
  bare = join(dir, 'express.git');
  runGit(dir, 'clone', '-q', '--bare', work, bare);
  rmSync(work, { recursive: true, force: true });
  server = await startServe(['--allow-local-repos']);
  auth = ['--url', server.url, '--token', server.adminToken];
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the default branch is found, not assumed', () => {
  it.each([
    ['a path', () => bare],
    ['a file:// URL', () => pathToFileURL(bare).href],
  ])('repository: %s without defaultBranch stores the HEAD, master', async (kind, url) => {
    const name = kind === 'a path' ? 'by-path' : 'by-url';
    const f = file(name, `name: ${name}\nrepository: ${url()}\n`);
    const created = await runBerth(['env', 'create', '--file', f, ...auth]);
    expect(created.code, created.stderr).toBe(0);
    expect(await defaultBranchOf(name)).toBe('master');
  });

  it('a YAML body through the API finds it too', async () => {
    const response = await fetch(`${server.url}/v1/environments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/yaml' },
      body: `name: by-yaml\nrepository:\n  url: ${bare}\n`,
    });
    expect(response.status).toBe(201);
    expect(((await response.json()) as EnvJson).spec.repository.defaultBranch).toBe('master');
  });

  it('a named branch that does not exist is refused with the branches that do', async () => {
    const f = file(
      'named-main',
      `name: named-main\nrepository:\n  url: ${bare}\n  defaultBranch: main\n`,
    );
    const refused = await runBerth(['env', 'create', '--file', f, ...auth]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'repository.defaultBranch: the repository has no branch "main" (its branches: 4.x, master; its default branch is "master")',
    );
    const gone = await runBerth(['env', 'show', 'named-main', ...auth]);
    expect(gone.code).toBe(1);
    // A named branch that exists is kept as named.
    const f2 = file(
      'named-4x',
      `name: named-4x\nrepository:\n  url: ${bare}\n  defaultBranch: 4.x\n`,
    );
    expect((await runBerth(['env', 'create', '--file', f2, ...auth])).code).toBe(0);
    expect(await defaultBranchOf('named-4x')).toBe('4.x');
  });

  it('env update asks again', async () => {
    const f = file('moving', `name: moving\nrepository: ${bare}\n`);
    expect((await runBerth(['env', 'create', '--file', f, ...auth])).code).toBe(0);
    expect(await defaultBranchOf('moving')).toBe('master');
    runGit(bare, 'symbolic-ref', 'HEAD', 'refs/heads/4.x');
    try {
      const updated = await runBerth(['env', 'update', 'moving', '--file', f, ...auth]);
      expect(updated.code, updated.stderr).toBe(0);
      expect(await defaultBranchOf('moving')).toBe('4.x');
    } finally {
      runGit(bare, 'symbolic-ref', 'HEAD', 'refs/heads/master');
    }
  });
});

describe('a public http repository is asked from the server, under the address guard', () => {
  let remote: GitHttpServer;
  let allowed: ServeHandle;
  beforeAll(async () => {
    remote = new GitHttpServer(dir, 'nobody', 'unused', true);
    await remote.start('127.0.0.1');
    // Loopback is not public: only an operator's BERTH_SETUP_ALLOW range lets it be asked.
    allowed = await startServe([], { BERTH_SETUP_ALLOW: '127.0.0.1/32' });
  });
  afterAll(async () => {
    await allowed?.stop();
    await remote?.stop();
  });

  it('without defaultBranch: its HEAD (master) is stored; a missing named branch is refused', async () => {
    const a = ['--url', allowed.url, '--token', allowed.adminToken];
    const f = file('over-http', `name: over-http\nrepository: ${remote.url('express.git')}\n`);
    const created = await runBerth(['env', 'create', '--file', f, '--json', ...a]);
    expect(created.code, created.stderr).toBe(0);
    expect((JSON.parse(created.stdout) as EnvJson).spec.repository.defaultBranch).toBe('master');
    expect(remote.requests.some((r) => r.includes('/express.git/info/refs'))).toBe(true);
    const named = file(
      'over-http-main',
      `name: over-http-main\nrepository: { url: ${remote.url('express.git')}, defaultBranch: main }\n`,
    );
    const refused = await runBerth(['env', 'create', '--file', named, ...a]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'the repository has no branch "main" (its branches: 4.x, master',
    );
  });

  it('a repository behind credentials is asked with them; without their value it is not asked', async () => {
    const token = 'tok-default-branch-4b1e';
    const locked = new GitHttpServer(dir, 'bot', token);
    await locked.start('127.0.0.1');
    try {
      const a = ['--url', allowed.url, '--token', allowed.adminToken];
      const yaml = (name: string) =>
        `name: ${name}\nrepository:\n  url: ${locked.url('express.git')}\n  credentials: { secret: GIT_TOKEN, username: bot }\nsecrets: [GIT_TOKEN]\n`;
      const withToken = file('locked', yaml('locked'));
      const created = await runBerth([
        'env',
        'create',
        '--file',
        withToken,
        '--secret',
        `GIT_TOKEN=${token}`,
        '--json',
        ...a,
      ]);
      expect(created.code, created.stderr).toBe(0);
      expect((JSON.parse(created.stdout) as EnvJson).spec.repository.defaultBranch).toBe('master');
      expect(locked.seen.authorized).toBeGreaterThan(0);
      expect(created.stdout + created.stderr).not.toContain(token);
      // Updated without giving the value again: the stored one is used.
      const asked = locked.seen.authorized;
      const updated = await runBerth(['env', 'update', 'locked', '--file', withToken, ...a]);
      expect(updated.code, updated.stderr).toBe(0);
      expect(locked.seen.authorized).toBeGreaterThan(asked);
      // Declared but no value: not asked (nothing sent), main assumed as before.
      const before = locked.requests.length;
      const noValue = file('locked-novalue', yaml('locked-novalue'));
      const assumed = await runBerth(['env', 'create', '--file', noValue, '--json', ...a]);
      expect(assumed.code, assumed.stderr).toBe(0);
      expect((JSON.parse(assumed.stdout) as EnvJson).spec.repository.defaultBranch).toBe('main');
      expect(locked.requests.length).toBe(before);
    } finally {
      await locked.stop();
    }
  });

  it('a git:// repository is asked the same way, under the address guard (a git daemon on loopback)', async () => {
    const daemonPort = await freePort();
    let log = '';
    const daemon = spawn(
      'git',
      [
        'daemon',
        '--reuseaddr',
        '--export-all',
        '--verbose',
        '--log-destination=stderr',
        `--base-path=${dir}`,
        '--listen=127.0.0.1',
        `--port=${daemonPort}`,
        dir,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await waitForPort(daemonPort);
      // The probe's own connection, logged: what follows is the server's.
      while (!log.includes('Connection from')) await new Promise((r) => setTimeout(r, 50));
      const connections = () => log.split('Connection from').length - 1;
      const url = `git://127.0.0.1:${daemonPort}/express.git`;
      // Without an allowance the loopback address is refused: nothing is sent, main is assumed.
      const f = file('git-guarded', `name: git-guarded\nrepository: ${url}\n`);
      const guarded = await runBerth(['env', 'create', '--file', f, '--json', ...auth]);
      expect(guarded.code, guarded.stderr).toBe(0);
      expect((JSON.parse(guarded.stdout) as EnvJson).spec.repository.defaultBranch).toBe('main');
      expect(connections()).toBe(1);

      const a = ['--url', allowed.url, '--token', allowed.adminToken];
      const g = file('over-git', `name: over-git\nrepository: ${url}\n`);
      const created = await runBerth(['env', 'create', '--file', g, '--json', ...a]);
      expect(created.code, created.stderr).toBe(0);
      expect((JSON.parse(created.stdout) as EnvJson).spec.repository.defaultBranch).toBe('master');
      expect(connections()).toBeGreaterThan(1);
      const named = file(
        'over-git-main',
        `name: over-git-main\nrepository: { url: ${JSON.stringify(url)}, defaultBranch: main }\n`,
      );
      const refused = await runBerth(['env', 'create', '--file', named, ...a]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        'the repository has no branch "main" (its branches: 4.x, master',
      );
    } finally {
      daemon.kill('SIGTERM');
    }
  });

  it('an address that is not public (loopback) is not asked without an allowance', async () => {
    const before = remote.requests.length;
    const f = file('guarded', `name: guarded\nrepository: ${remote.url('express.git')}\n`);
    // `server` runs without BERTH_SETUP_ALLOW: the loopback address is refused, nothing is sent.
    const created = await runBerth(['env', 'create', '--file', f, '--json', ...auth]);
    expect(created.code, created.stderr).toBe(0);
    expect((JSON.parse(created.stdout) as EnvJson).spec.repository.defaultBranch).toBe('main');
    expect(remote.requests.length).toBe(before);
  });
});
