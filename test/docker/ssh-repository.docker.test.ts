import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PullRequestService } from '../../src/services/pull-request-service.js';
import { runBerth, startServe, type ServeHandle } from '../support/cli.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';

/**
 * Checkout of an ssh repository on a real Docker engine, through `berth run --json`: a private
 * sshd on 127.0.0.1 (started by this test, as root) serves a bare repository; the environment's
 * credentials name a secret holding the private key. The orchestrator fetches on the host and
 * hands the sandbox a bundle, so the key is nowhere in the sandbox. A new commit pushed to the
 * server reaches the next (cached) task; a refused key, a pinned host key that does not match
 * and a trusted-on-first-use key that changed all fail the checkout with ssh's own words.
 * The sshd listens on loopback, which the server's host asks for a default branch only when the
 * operator allows it (docs/environments.md): BERTH_SETUP_ALLOW gains 127.0.0.1/32 here, for the
 * servers and `berth run`s this file starts.
 */

const instance = `sshrepo-${process.pid}`;
let image: string;
let work: string;
let repo: ReturnType<typeof makeSampleRepository>;
let bare: string;
let url: string;
let port: number;
let sshd: ChildProcess;
let sshdLog = '';
let clientKey: string;
let wrongKey: string;
let hostKeyLine: string;
let otherHostKeyLine: string;

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', ...(cwd ? { cwd } : {}) }).trim();
}

function gitIn(dir: string, ...args: string[]): string {
  return sh('git', [
    '-C',
    dir,
    '-c',
    'user.name=Test',
    '-c',
    'user.email=t@berth.example',
    ...args,
  ]);
}

/** A new ed25519 key pair in `dir`: [private key text, public key line]. */
function keyPair(dir: string, name: string): [string, string] {
  const file = join(dir, name);
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return [readFileSync(file, 'utf8'), readFileSync(`${file}.pub`, 'utf8').trim()];
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitForBanner(p: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port: p });
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString().startsWith('SSH-'));
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not come up on port ${p}:\n${sshdLog}`);
}

beforeAll(async () => {
  process.env.BERTH_SETUP_ALLOW = [process.env.BERTH_SETUP_ALLOW, '127.0.0.1/32']
    .filter((range) => range !== undefined && range !== '')
    .join(',');
  image = lifecycleTestImage();
  work = mkdtempSync(join(tmpdir(), 'berth-ssh-repo-'));
  repo = makeSampleRepository();
  bare = join(work, 'srv', 'app.git');
  sh('git', ['clone', '-q', '--bare', '--', repo.dir, bare]);

  const keys = join(work, 'keys');
  mkdirSync(keys);
  const [hostPrivate, hostPublic] = keyPair(keys, 'host');
  void hostPrivate;
  const [, otherHostPublic] = keyPair(keys, 'other-host');
  const [client, clientPublic] = keyPair(keys, 'client');
  [wrongKey] = keyPair(keys, 'wrong');
  clientKey = client;
  writeFileSync(join(keys, 'authorized_keys'), `${clientPublic}\n`, { mode: 0o600 });

  port = await freePort();
  const hostWord = (line: string) => line.split(' ').slice(0, 2).join(' ');
  hostKeyLine = `[127.0.0.1]:${port} ${hostWord(hostPublic)}`;
  otherHostKeyLine = `[127.0.0.1]:${port} ${hostWord(otherHostPublic)}`;
  const config = join(work, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(keys, 'host')}`,
      `AuthorizedKeysFile ${join(keys, 'authorized_keys')}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      `PidFile ${join(work, 'sshd.pid')}`,
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true });
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  sshd.stderr?.on('data', (d: Buffer) => (sshdLog += d.toString()));
  await waitForBanner(port);
  url = `ssh://root@127.0.0.1:${port}${bare}`;
});

afterAll(() => {
  sshd?.kill('SIGTERM');
  const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
  const leftovers = docker('ps', '-aq', '--filter', `label=berth.instance=${instance}`);
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
  expect(leftovers).toBe('');
});

function envFile(name: string, credentials: string[] = [], setup = 'echo setup-ran'): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      'repository:',
      `  url: ${url}`,
      '  credentials:',
      '    secret: REPO_KEY',
      ...credentials.map((line) => `    ${line}`),
      'secrets: [REPO_KEY]',
      'image: minimal',
      `setup: ${JSON.stringify(setup)}`,
      '',
    ].join('\n'),
  );
  return file;
}

const base = (key: () => string) => ({
  dataDir: join(work, 'data'),
  instance,
  resolveImage: () => image,
  lookupSecret: (name: string) => (name === 'REPO_KEY' ? key() : undefined),
});

/**
 * Shell lines counting where any base64 line of the private key's body appears in the agent
 * phase. Each line is split in two in the command, so the command itself holds none of them.
 */
function keyPatterns(key: string): { patterns: string; count: number } {
  const body = key.split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
  // The first lines are the format's header (the same for every key); the rest is the key's own.
  const own = body.slice(2).filter((l) => l.length >= 16);
  expect(own.length).toBeGreaterThan(0);
  return {
    patterns: own.map((l) => `-e "${l.slice(0, 8)}""${l.slice(8)}"`).join(' '),
    count: own.length,
  };
}

function keySearch(key: string): string {
  const { patterns } = keyPatterns(key);
  return [
    `echo "env-hits=$(env | grep -cF ${patterns})"`,
    `echo "proc-hits=$(cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n" | grep -cF ${patterns})"`,
    `echo "file-hits=$(grep -rlsF ${patterns} /root /etc /tmp /workspace /var/lib/berth | wc -l)"`,
  ].join('\n');
}

describe('ssh repositories', () => {
  it('checks out over ssh on the host, keeps the key out of the sandbox, and fetches new commits on the cached path', async () => {
    // Setup sees the secret (as every secret): a check that the search below can find the key.
    const { patterns, count } = keyPatterns(clientKey);
    const file = envFile(
      'ssh-main',
      [],
      `echo setup-ran; echo "setup-key-lines=$(printf '%s' "$REPO_KEY" | grep -cF ${patterns})"`,
    );
    const probe = [
      './test.sh',
      keySearch(clientKey),
      'echo "ssh-dir=$(test -e /root/.ssh && echo yes || echo no)"',
      'echo "config-start"; cat .git/config; echo "config-end"',
      'echo "head=$(git rev-parse HEAD)"',
    ].join('\n');
    const first = await runJson({ ...base(() => clientKey), envFile: file, command: probe });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('fetching the ssh repository on the host');
    expect(first.stderr).toContain('trusted on first use');
    expect(first.stderr).toContain(`setup-key-lines=${count}`);
    const out = first.result.attempts[0]?.commands[0]?.output ?? '';
    expect(out).toContain('tests passed');
    expect(out).toContain('env-hits=0');
    expect(out).toContain('proc-hits=0');
    expect(out).toContain('file-hits=0');
    expect(out).toContain('ssh-dir=no');
    expect(out).toContain(`head=${repo.mainCommit}`);
    const gitConfig = /config-start\n([\s\S]*)config-end/.exec(out)?.[1] ?? '';
    expect(gitConfig).toContain('[remote "origin"]');
    expect(gitConfig).not.toMatch(/ssh|PRIVATE KEY/i);
    expect(first.stderr).not.toContain('PRIVATE KEY');
    // The host key was trusted on first use, in the environment's file in the data directory.
    const knownHosts = readdirSync(join(work, 'data', 'known_hosts'));
    expect(knownHosts).toHaveLength(1);
    expect(readFileSync(join(work, 'data', 'known_hosts', knownHosts[0] ?? ''), 'utf8')).toContain(
      hostKeyLine.split(' ')[2],
    );

    // A new commit on the server reaches the next task, which starts from the cache.
    const clone = join(work, 'push');
    sh('git', ['clone', '-q', '--', bare, clone]);
    writeFileSync(join(clone, 'NEW.md'), 'pushed later\n');
    gitIn(clone, 'add', 'NEW.md');
    gitIn(clone, 'commit', '-qm', 'pushed later');
    gitIn(clone, 'push', '-q', 'origin', 'main');
    const pushed = gitIn(clone, 'rev-parse', 'HEAD');
    const second = await runJson({
      ...base(() => clientKey),
      envFile: file,
      command: 'cat NEW.md; git rev-parse HEAD',
    });
    expect(second.code, second.stderr).toBe(0);
    expect(second.result.attempts[0]?.cacheHit).toBe(true);
    expect(second.stderr).not.toContain('setup-ran');
    expect(second.result.attempts[0]?.commands[0]?.output).toContain('pushed later');
    expect(second.result.attempts[0]?.commands[0]?.output).toContain(pushed);

    const feature = await runJson({
      ...base(() => clientKey),
      envFile: file,
      branch: 'feature',
      command: 'cat FEATURE; git rev-parse HEAD',
    });
    expect(feature.code, feature.stderr).toBe(0);
    expect(feature.result.attempts[0]?.commands[0]?.output).toContain(repo.featureCommit);

    // The trusted key changes (as if the server were replaced): the checkout fails, ssh says why.
    const trusted = join(work, 'data', 'known_hosts', knownHosts[0] ?? '');
    writeFileSync(trusted, `${otherHostKeyLine}\n`);
    const changed = await runJson({ ...base(() => clientKey), envFile: file, command: 'true' });
    expect(changed.code).toBe(1);
    expect(changed.result.attempts[0]?.error).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
    expect(changed.result.attempts[0]?.error).toContain('Host key verification failed');
  });

  it("fails the checkout with ssh's answer for a refused key, and makes no cache entry", async () => {
    const file = envFile('ssh-wrong-key');
    const run = await runJson({ ...base(() => wrongKey), envFile: file, command: 'true' });
    expect(run.code).toBe(1);
    const error = run.result.attempts[0]?.error ?? '';
    expect(error).toContain('Permission denied (publickey)');
    expect(error).not.toContain('PRIVATE KEY');
    expect(run.stderr).not.toContain('setup-ran');
    // No cache entry: the same environment with the right key starts from nothing.
    const next = await runJson({ ...base(() => clientKey), envFile: file, command: './test.sh' });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain('cache miss: no cache entry yet');
  });

  it('checks the host key against repository.credentials.knownHosts', async () => {
    const wrong = envFile('ssh-pinned-wrong', [`knownHosts: "${otherHostKeyLine}"`]);
    const refused = await runJson({ ...base(() => clientKey), envFile: wrong, command: 'true' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('checked against repository.credentials.knownHosts');
    expect(refused.result.attempts[0]?.error).toContain('Host key verification failed');

    const right = envFile('ssh-pinned', [`knownHosts: "${hostKeyLine}"`]);
    const ok = await runJson({ ...base(() => clientKey), envFile: right, command: './test.sh' });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.result.attempts[0]?.commands[0]?.output).toContain('tests passed');
  });

  it("pushes a pull request's branch to the ssh remote with the environment's key only", async () => {
    // The change: a new file on top of main, as a task's diff.
    const clone = join(work, 'pr-clone');
    sh('git', ['clone', '-q', '--', repo.dir, clone]);
    writeFileSync(join(clone, 'PR.txt'), 'from a task\n');
    gitIn(clone, 'add', 'PR.txt');
    const diff = execFileSync('git', ['-C', clone, 'diff', '--cached', '--binary'], {
      encoding: 'utf8',
    });
    const service = new PullRequestService({
      githubApiUrl: 'http://127.0.0.1:9/unused',
      githubRemotes: {},
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: false,
      // The sshd is on loopback: allowed as the server's BERTH_SETUP_ALLOW would.
      addressPolicy: { allow: ['127.0.0.1/32'] },
    });
    const request = (taskId: string, key: string) => ({
      taskId,
      repository: url,
      base: 'main',
      baseCommit: repo.mainCommit,
      diff,
      commitMessage: 'Add PR.txt',
      title: 'Add PR.txt',
      body: 'A file.',
      draft: false,
      credentials: { username: 'root', password: key, knownHosts: hostKeyLine },
    });
    const outcome = await service.open(request('task_sshpr1', clientKey));
    expect(outcome.branch).toBe('berth/task_sshpr1');
    expect(outcome.pullRequest).toBeNull();
    expect(gitIn(bare, 'show', 'berth/task_sshpr1:PR.txt')).toBe('from a task');

    const refused = await service.open(request('task_sshpr2', wrongKey)).then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );
    expect(refused).toContain('Permission denied (publickey)');
    expect(gitIn(bare, 'branch', '--list', 'berth/task_sshpr2')).toBe('');
    // The key went with the push: no key file of a session is left on the host.
    expect(readdirSync(tmpdir()).filter((f) => /^berth-ssh-[A-Za-z0-9]{6}$/.test(f))).toEqual([]);
  });
});

describe('the default branch of an ssh repository (issue 20 item 1)', () => {
  let server: ServeHandle;
  let auth: string[];
  let masterBare: string;
  let masterUrl: string;
  interface EnvJson {
    id: string;
    spec: { repository: { defaultBranch: string } };
  }
  const keyEnv = () => ({ REPO_KEY: clientKey });

  function yaml(
    name: string,
    extra: string[] = [],
    credentials: string[] = [],
    repositoryUrl = masterUrl,
  ): string {
    const file = join(work, `${name}.yaml`);
    writeFileSync(
      file,
      [
        `name: ${name}`,
        'repository:',
        `  url: ${repositoryUrl}`,
        ...extra,
        '  credentials:',
        '    secret: REPO_KEY',
        ...credentials,
        'secrets: [REPO_KEY]',
        'image: minimal',
        '',
      ].join('\n'),
    );
    return file;
  }

  async function create(file: string, withKey = true) {
    return await runBerth(
      [
        'env',
        'create',
        '--file',
        file,
        ...(withKey ? ['--secret-from-env', 'REPO_KEY'] : []),
        '--json',
        ...auth,
      ],
      keyEnv(),
    );
  }

  beforeAll(async () => {
    // Shaped like expressjs/express: HEAD is master, and another branch, 4.x.
    masterBare = join(work, 'srv', 'express.git');
    sh('git', ['clone', '-q', '--bare', '--', repo.dir, masterBare]);
    const current = sh('git', ['-C', masterBare, 'symbolic-ref', '--short', 'HEAD']);
    sh('git', ['-C', masterBare, 'branch', '-m', current, 'master']);
    sh('git', ['-C', masterBare, 'branch', '4.x', 'master']);
    masterUrl = `ssh://root@127.0.0.1:${port}${masterBare}`;
    server = await startServe();
    auth = ['--url', server.url, '--token', server.adminToken];
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('env create without defaultBranch asks the remote with the key and stores master; a missing named branch is refused', async () => {
    const created = await create(yaml('ssh-master'));
    expect(created.code, created.stderr).toBe(0);
    const env = JSON.parse(created.stdout) as EnvJson;
    expect(env.spec.repository.defaultBranch).toBe('master');
    expect(created.stdout + created.stderr).not.toContain('PRIVATE KEY');
    // The host key was trusted on first use in the environment's own file, the checkout's.
    expect(readFileSync(join(server.dataDir, 'known_hosts', env.id), 'utf8')).toContain(
      hostKeyLine.split(' ')[2],
    );
    // No key file is left behind.
    expect(
      readdirSync(tmpdir()).filter((f) => f.startsWith(`berth-ssh-${server.child.pid}-`)),
    ).toEqual([]);

    const refused = await create(yaml('ssh-named-main', ['  defaultBranch: main']));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'repository.defaultBranch: the repository has no branch "main" (its branches: 4.x, feature, master; its default branch is "master")',
    );

    // env update asks again, with the stored key: HEAD moved to 4.x.
    sh('git', ['-C', masterBare, 'symbolic-ref', 'HEAD', 'refs/heads/4.x']);
    try {
      const updated = await runBerth(
        ['env', 'update', 'ssh-master', '--file', yaml('ssh-master'), '--json', ...auth],
        {},
      );
      expect(updated.code, updated.stderr).toBe(0);
      expect((JSON.parse(updated.stdout) as EnvJson).spec.repository.defaultBranch).toBe('4.x');
    } finally {
      sh('git', ['-C', masterBare, 'symbolic-ref', 'HEAD', 'refs/heads/master']);
    }
  });

  it('berth run stores an ssh repository it did not ask as assumed, and the attempt asks it with the key', async () => {
    // berth run asks no ssh repository when it writes the environment (no id for a host-key
    // file yet): assumed, so the attempt asks on the host with the key before its cache key and
    // clones master (the old code stored it as named: the clone found no branch main).
    const ran = await runJson({
      ...base(() => clientKey),
      dataDir: join(work, 'data-run-default-branch'),
      envFile: yaml('run-ssh-master'),
      command: 'echo "head=$(git rev-parse HEAD)"',
    });
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toContain('default branch: master (found on the remote)');
    expect(ran.result.attempts[0]?.commands[0]?.output ?? '').toContain(`head=${repo.mainCommit}`);
  });

  it('is not asked without the key, nor believed from a host whose key does not match the pinned one', async () => {
    const noKey = await create(yaml('ssh-no-key'), false);
    expect(noKey.code, noKey.stderr).toBe(0);
    expect((JSON.parse(noKey.stdout) as EnvJson).spec.repository.defaultBranch).toBe('main');

    // A host under a name reserved for tests (localhost, which reaches this sshd) is not asked.
    const reserved = await create(
      yaml('ssh-localhost', [], [], masterUrl.replace('@127.0.0.1:', '@localhost:')),
    );
    expect(reserved.code, reserved.stderr).toBe(0);
    const reservedEnv = JSON.parse(reserved.stdout) as EnvJson;
    expect(reservedEnv.spec.repository.defaultBranch).toBe('main');
    expect(existsSync(join(server.dataDir, 'known_hosts', reservedEnv.id))).toBe(false);

    // Not asked when written, so assumed: the first attempt asks it on the host with the key
    // before its cache key, stores master and clones it (the old code failed at the clone).
    const ran = await runBerth(
      ['exec', '--env', 'ssh-localhost', '--command', 'git log -1 --format=%s', '--wait', ...auth],
      {},
    );
    expect(ran.code, ran.stdout + ran.stderr).toBe(0);
    expect(ran.stdout + ran.stderr).toContain('default branch: master (found on the remote)');
    const shown = await runBerth(['env', 'show', 'ssh-localhost', '--json', ...auth], {});
    expect((JSON.parse(shown.stdout) as EnvJson).spec.repository.defaultBranch).toBe('master');

    const pinnedWrong = await create(
      yaml(
        'ssh-pinned-other',
        ['  defaultBranch: develop'],
        [`    knownHosts: "${otherHostKeyLine}"`],
      ),
    );
    // The host's key is not the pinned one: nothing was asked, so "develop" is not refused.
    expect(pinnedWrong.code, pinnedWrong.stderr).toBe(0);
    expect((JSON.parse(pinnedWrong.stdout) as EnvJson).spec.repository.defaultBranch).toBe(
      'develop',
    );
    // The same with the host's real key pinned: asked (strictly checked), so refused.
    const pinnedRight = await create(
      yaml('ssh-pinned-right', ['  defaultBranch: develop'], [`    knownHosts: "${hostKeyLine}"`]),
    );
    expect(pinnedRight.code).toBe(2);
    expect(pinnedRight.stderr).toContain('the repository has no branch "develop"');
  });
});
