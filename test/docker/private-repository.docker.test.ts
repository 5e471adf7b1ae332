import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { FakeGitHub } from '../support/fake-github.js';
import { GitHttpServer } from '../support/git-http-server.js';
import { openForeignAddress, type ForeignAddress } from '../support/foreign-address.js';
import { writeFileSync } from 'node:fs';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * An environment's own git credentials (`repository.credentials`) through `berth serve`, the CLI
 * and the real Docker engine: a private repository served by git http-backend behind Basic
 * authentication (at a network namespace's address on this machine, support/foreign-address.ts,
 * so sandboxes and the server's host reach it), a fake
 * GitHub API that accepts only the environment's token. The checkout (clone into the cache, then a
 * fetch of another branch from the cache) works with the environment's credentials and leaves no
 * trace of the token in the sandbox's final state; `task pr` pushes with them and the API sees
 * `Authorization: Bearer <that token>` (not the server's BERTH_GITHUB_TOKEN); a wrong token fails
 * the checkout with git's answer for the remote, and the push with a fixed message (git's answer
 * in the server's log).
 */

const INSTANCE = `privrepo-${process.pid}`;
const USER = 'berth-bot';
const TOKEN = 'ghp-envtoken-7f3a9c1e5b';
const SERVER_TOKEN = 'ghs-server-token-not-this-one';

interface TaskJson {
  id: string;
  status: string;
  attempts: Array<{
    id: string;
    status: string;
    error: string | null;
    diff: string;
    snapshotImage: string | null;
  }>;
}

let server: ServeHandle;
let remote: GitHttpServer;
let foreign: ForeignAddress;
let port = 0;
/** A repository's URL at the namespace's address. */
const repositoryUrl = (name: string) => `http://${foreign.address}:${port}/${name}`;
let fake: FakeGitHub;
let auth: string[];
let url: string;
let bare: string;
let envFile: string;
let repo: ReturnType<typeof makeSampleRepository>;

function berth(...args: string[]) {
  return runBerth([...args, ...auth]);
}

async function execJson(...args: string[]): Promise<TaskJson> {
  const r = await berth('exec', '--env', 'private', '--wait', '--json', ...args);
  if (!r.stdout.includes('"status"')) throw new Error(`${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as TaskJson;
}

/** Runs a script in a throwaway container of the image (no network), its output. */
function inImage(image: string, script: string, env: Record<string, string> = {}): string {
  return execFileSync(
    'docker',
    [
      'run',
      '--rm',
      '--network',
      'none',
      ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
      '--entrypoint',
      'bash',
      image,
      '-c',
      script,
    ],
    { encoding: 'utf8' },
  );
}

beforeAll(async () => {
  const image = lifecycleTestImage();
  repo = makeSampleRepository();
  const root = tempDir('private-git');
  bare = join(root, 'app.git');
  execFileSync('git', ['clone', '-q', '--bare', repo.dir, bare]);
  // An address on this machine that is not one of its own (a network namespace): sandboxes
  // reach it, and so does the server's host, which never connects to its own addresses.
  foreign = openForeignAddress();
  remote = new GitHttpServer(root, USER, TOKEN);
  await remote.start(foreign.hostAddress);
  port = Number(new URL(remote.url('app.git')).port);
  await foreign.forward(port);
  url = repositoryUrl('app.git');
  fake = new FakeGitHub({ token: TOKEN, repositories: { 'acme/private': bare } });
  await fake.start();
  server = await startServe([], {
    BERTH_GITHUB_TOKEN: SERVER_TOKEN,
    BERTH_INSTANCE: INSTANCE,
    BERTH_GITHUB_API_URL: fake.url,
    BERTH_GITHUB_REMOTES: `${url}=acme/private`,
    // The git server is on an address of this machine, which the setup network refuses unless
    // the operator allows it (as a site does for its own git server).
    BERTH_SETUP_ALLOW: [process.env.BERTH_SETUP_ALLOW, `${foreign.address}/32`]
      .filter(Boolean)
      .join(','),
  });
  auth = ['--url', server.url, '--token', server.adminToken];
  envFile = join(tempDir('private-env'), 'env.yaml');
  writeFileSync(
    envFile,
    `name: private
repository:
  url: ${url}
  credentials:
    secret: GIT_TOKEN
    username: ${USER}
image: ${image}
setup: echo "setup ran"
secrets: [GIT_TOKEN]
`,
  );
  const created = await berth('env', 'create', '--file', envFile, '--secret', `GIT_TOKEN=${TOKEN}`);
  expect(created.code, created.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  removeInstanceImages(INSTANCE);
  await remote?.stop();
  await foreign?.close();
  await fake?.stop();
});

describe('an environment with its own git credentials (docker)', () => {
  let first: TaskJson;

  it('checks out the private repository with them (clone, then a fetch from the cache), leaving no trace of the token', async () => {
    const basic = `Basic ${Buffer.from(`${USER}:${TOKEN}`).toString('base64')}`;
    const before = remote.seen.authorized;
    first = await execJson('--command', 'echo fixed >> README.md; env > /tmp/agent-env.txt');
    expect(first.attempts[0]?.error ?? null).toBeNull();
    expect(first.status).toBe('succeeded');
    expect(first.attempts[0]?.diff).toContain('+fixed');
    expect(remote.seen.authorized).toBeGreaterThan(before);
    expect(remote.seen.authorizations).toContain(basic);

    const second = await execJson('--branch', 'feature', '--command', 'cat FEATURE');
    expect(second.status).toBe('succeeded');

    // The final state of both sandboxes: the token is nowhere, the remote has no credentials.
    for (const task of [first, second]) {
      const image = task.attempts[0]?.snapshotImage;
      expect(image).toBeTruthy();
      const half = Math.floor(TOKEN.length / 2);
      const found = inImage(
        image!,
        'grep -rlsF -- "$A$B" /workspace /root /home /etc /tmp /var/lib/berth /usr/local/etc 2>/dev/null; ' +
          'git -C /workspace config --list --show-origin | grep -c -i -e credential -e extraheader -e "$A$B" || true; ' +
          'git -C /workspace remote get-url origin',
        { A: TOKEN.slice(0, half), B: TOKEN.slice(half) },
      );
      expect(found.trim().split('\n')).toEqual(['0', url]);
      const inspect = execFileSync('docker', ['image', 'inspect', image!], { encoding: 'utf8' });
      expect(inspect).not.toContain(TOKEN);
    }
    // The logs mask it like any secret.
    const logs = await berth('task', 'logs', first.id);
    expect(logs.stdout).not.toContain(TOKEN);
  });

  it('task pr pushes with them, and the GitHub API gets the environment token', async () => {
    const r = await berth('task', 'pr', first.id, '--json');
    expect(r.code, r.stderr).toBe(0);
    const opened = JSON.parse(r.stdout) as {
      branch: string;
      commit: string;
      pullRequest: { number: number; created: boolean };
    };
    expect(opened.pullRequest).toMatchObject({ number: 1, created: true });
    expect(
      execFileSync('git', ['-C', bare, 'rev-parse', `refs/heads/berth/${first.id}`], {
        encoding: 'utf8',
      }).trim(),
    ).toBe(opened.commit);
    expect(fake.requests.length).toBeGreaterThan(0);
    for (const request of fake.requests)
      expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it('a remote whose default branch is master, no defaultBranch: found with the credentials; renamed later, the clone says what to write', async () => {
    const master = join(bare, '..', 'master.git');
    execFileSync('git', ['clone', '-q', '--bare', repo.dir, master]);
    execFileSync('git', ['-C', master, 'branch', '-m', 'main', 'master']);
    execFileSync('git', ['-C', master, 'symbolic-ref', 'HEAD', 'refs/heads/master']);
    const file = join(tempDir('private-master'), 'env.yaml');
    writeFileSync(
      file,
      `name: private-master\nrepository:\n  url: ${repositoryUrl('master.git')}\n  credentials: { secret: GIT_TOKEN, username: ${USER} }\nimage: ${lifecycleTestImage()}\nsecrets: [GIT_TOKEN]\n`,
    );
    const created = await berth(
      'env',
      'create',
      '--file',
      file,
      '--secret',
      `GIT_TOKEN=${TOKEN}`,
      '--json',
    );
    expect(created.code, created.stderr).toBe(0);
    const view = JSON.parse(created.stdout) as { spec: { repository: { defaultBranch: string } } };
    expect(view.spec.repository.defaultBranch).toBe('master');
    const ok = await berth(
      'exec',
      '--env',
      'private-master',
      '--wait',
      '--json',
      '--command',
      'git rev-parse --abbrev-ref HEAD',
    );
    expect((JSON.parse(ok.stdout) as TaskJson).status, ok.stderr).toBe('succeeded');

    // The branch renamed after the environment was written: the cache build's clone (in the
    // sandbox, with the credentials) says which branches there are, once.
    execFileSync('git', ['-C', master, 'branch', '-m', 'master', 'trunk']);
    execFileSync('git', ['-C', master, 'symbolic-ref', 'HEAD', 'refs/heads/trunk']);
    expect((await berth('env', 'cache', 'reset', 'private-master')).code).toBe(0);
    const r = await berth(
      'exec',
      '--env',
      'private-master',
      '--wait',
      '--json',
      '--command',
      'true',
    );
    const task = JSON.parse(r.stdout) as TaskJson;
    expect(task.attempts[0]?.error).toContain(
      'could not clone the repository: the repository has no branch "master" (its branches: feature, trunk; its default branch is "trunk"). Name the branch in the environment (repository: { url: …, defaultBranch: trunk })',
    );
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it('a wrong token: the push and the checkout fail with the remote answer', async () => {
    const updated = await berth(
      'env',
      'update',
      'private',
      '--file',
      envFile,
      '--secret',
      'GIT_TOKEN=ghp-wrong-token-000',
    );
    expect(updated.code, updated.stderr).toBe(0);
    const pushed = execFileSync('git', ['-C', bare, 'rev-parse', `refs/heads/berth/${first.id}`], {
      encoding: 'utf8',
    }).trim();
    const pr = await berth('task', 'pr', first.id);
    expect(pr.code).not.toBe(0);
    // The caller gets a fixed message (no port oracle); git's answer is in the server's log.
    expect(pr.stderr).toContain('could not clone');
    expect(server.logLines.join('\n')).toContain('Authentication failed');
    expect(server.logLines.join('\n')).not.toContain('ghp-wrong-token-000');
    expect(pr.stderr).toContain('nothing was pushed');
    expect(pr.stderr).not.toContain('ghp-wrong-token-000');
    expect(
      execFileSync('git', ['-C', bare, 'rev-parse', `refs/heads/berth/${first.id}`], {
        encoding: 'utf8',
      }).trim(),
    ).toBe(pushed);

    // The secret changed, so the cache is rebuilt: the clone is refused.
    const failed = await execJson('--command', 'true');
    expect(failed.status).toBe('failed');
    expect(failed.attempts[0]?.error).toContain('could not clone the repository');
    expect(failed.attempts[0]?.error).toContain('Authentication failed');
    expect(failed.attempts[0]?.error).not.toContain('ghp-wrong-token-000');
  });
});
