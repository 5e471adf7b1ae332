import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheKeyParts, explainChange } from '../../src/domain/cache/cache-key.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import type { EnvironmentSpec } from '../../src/domain/environment/environment-spec.js';
import { ENVIRONMENT_YAML_LIMITS } from '../../src/domain/environment/environment-yaml.js';
import {
  checkRepositoryFile,
  repositoryConfigNow,
  type RepositoryConfigNow,
} from '../../src/lifecycle/repository-config-now.js';
import { machineAddresses } from '../../src/egress/machine-addresses.js';
import {
  countConnections,
  countConnectionsAround,
  failure,
} from '../support/connection-counter.js';
import { GitHttpServer } from '../support/git-http-server.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { EnvironmentService } from '../../src/services/environment-service.js';

/**
 * `repository.config` on an https/http/git:// repository (issue 16 item 1): the file is read at
 * the default branch's head on the server's host through the checkout's vetted host-side fetch
 * (remote-branch-head.ts), from a real `git http-backend` behind Basic authentication on
 * loopback, allowed as an operator allows it (BERTH_SETUP_ALLOW). Without the allow, a loopback
 * URL is refused before git connects; the temporary repository is always removed.
 */

const TOKEN = 'SECRET-TOKEN-7731';
const credentials = { username: 'x-access-token', password: TOKEN };
const allow = { allow: ['127.0.0.1/32'] };
const FILE = '.berth/environment.yaml';
const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n';

let dir: string;
let work: string;
let temp: string;
let server: GitHttpServer;
const savedTmp = process.env.TMPDIR;

function git(...args: string[]): string {
  return execFileSync('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
    encoding: 'utf8',
  }).trim();
}

/** Commits the file (or removes it: null) in the work tree and pushes main to the served repository. */
function commitFile(text: string | null): string {
  if (text === null) git('rm', '-q', FILE);
  else {
    mkdirSync(join(work, '.berth'), { recursive: true });
    writeFileSync(join(work, FILE), text);
    git('add', '-A');
  }
  git('commit', '-qm', 'environment file');
  git('push', '-q', join(dir, 'served', 'r.git'), 'main');
  return git('rev-parse', 'HEAD');
}

function environment(config = FILE): { spec: EnvironmentSpec } {
  return {
    spec: parseEnvironmentSpec({
      name: 'remote-file',
      image: 'minimal',
      repository: { url: server.url('r.git'), defaultBranch: 'main', config },
      env: { SHARED: 'environment' },
    }),
  };
}

const noTemplates = () => Promise.resolve(undefined);

async function readNow(
  config = FILE,
  remote: Parameters<typeof repositoryConfigNow>[3]['remote'] = {
    credentials,
    addressPolicy: allow,
  },
): Promise<RepositoryConfigNow | undefined> {
  const env = environment(config);
  return await repositoryConfigNow(env, env.spec, noTemplates, { allowLocal: false, remote });
}

const keyParts = (r: RepositoryConfigNow) =>
  cacheKeyParts({
    environmentId: 'env_remote',
    baseImageDigest: 'sha256:base',
    repository: r.spec.repository,
    versions: r.spec.versions,
    setup: r.spec.setup,
    maintenance: r.spec.maintenance,
    env: r.spec.env,
    secrets: {},
    repositoryFile: r.file,
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-remote-file-'));
  // The fetch's temporaries go here, so the test sees that none is left behind.
  temp = join(dir, 'tmp');
  mkdirSync(temp);
  process.env.TMPDIR = temp;
  mkdirSync(join(dir, 'served'));
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', join(dir, 'served', 'r.git')]);
  work = join(dir, 'work');
  execFileSync('git', ['init', '-q', '-b', 'main', work]);
  mkdirSync(join(work, '.berth'));
  writeFileSync(join(work, 'README.md'), 'x\n');
  git('add', '-A');
  git('commit', '-qm', 'one');
  git('push', '-q', join(dir, 'served', 'r.git'), 'main');
  server = new GitHttpServer(join(dir, 'served'), credentials.username, TOKEN);
  await server.start('127.0.0.1');
});

afterAll(async () => {
  await server.stop();
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  rmSync(dir, { recursive: true, force: true });
});

describe('repository.config on a remote repository', () => {
  it('is accepted when the environment is written (read at the attempt), with no connection', async () => {
    const before = server.requests.length;
    await expect(checkRepositoryFile(environment().spec, false)).resolves.toBeUndefined();
    expect(server.requests.length).toBe(before);
  });

  it('refuses a file missing at the head, with the path and commit, and a missing branch', async () => {
    const head = git('rev-parse', 'HEAD');
    await expect(readNow()).rejects.toThrow(
      `repository.config: ${FILE}: not in the repository at commit ${head.slice(0, 12)} (branch main)`,
    );
    const env = environment();
    const other = { ...env.spec, repository: { ...env.spec.repository, defaultBranch: 'gone' } };
    await expect(
      repositoryConfigNow({ spec: other }, other, noTemplates, {
        allowLocal: false,
        remote: { credentials, addressPolicy: allow },
      }),
    ).rejects.toThrow(/the repository has no branch "gone"/);
    expect(readdirSync(temp)).toEqual([]);
  });

  it("reads and merges the default branch head's file with the credentials; a commit changing it changes the key", async () => {
    const first = commitFile('setup: echo from-the-file\nenv:\n  FROM_FILE: one\n  SHARED: file\n');
    const authorized = server.seen.authorized;
    const one = await readNow();
    expect(one?.commit).toBe(first);
    expect(one?.spec.setup?.script).toBe('echo from-the-file');
    expect(one?.spec.env).toEqual({ FROM_FILE: 'one', SHARED: 'environment' });
    expect(server.seen.authorized).toBeGreaterThan(authorized);
    expect(readdirSync(temp)).toEqual([]);
    await expect(readNow('.berth')).rejects.toThrow(
      /repository\.config: \.berth: not a file at commit [0-9a-f]{12} \(a tree\)/,
    );

    // Unchanged: the same digest and key.
    const again = await readNow();
    expect(again?.file).toEqual(one?.file);
    expect(keyParts(again!)).toEqual(keyParts(one!));

    commitFile('setup: echo changed\nenv:\n  FROM_FILE: one\n  SHARED: file\n');
    const two = await readNow();
    expect(two?.file.digest).not.toBe(one?.file.digest);
    expect(explainChange(keyParts(one!), keyParts(two!))).toEqual([
      'setup script changed',
      `repository file ${FILE} changed`,
    ]);

    // A bad file fails with the field path, line and column, as for a local repository.
    commitFile('setup: echo x\nsetpu: typo\n');
    await expect(readNow()).rejects.toThrow(
      /repository file \.berth\/environment\.yaml: setpu: not a field of a repository file .*\(line 2, column 1\)/,
    );
    // Too big: refused with its size, as for a local repository.
    commitFile(`# ${'x'.repeat(ENVIRONMENT_YAML_LIMITS.maxBytes)}\n`);
    await expect(readNow()).rejects.toThrow(
      `the file is ${ENVIRONMENT_YAML_LIMITS.maxBytes + 3} bytes; at most ${ENVIRONMENT_YAML_LIMITS.maxBytes} are accepted`,
    );
    commitFile(null);
  });

  it('fails with a wrong token, without the token in the message', async () => {
    const message = await failure(
      readNow(FILE, {
        credentials: { ...credentials, password: 'WRONG-TOKEN-1' },
        addressPolicy: allow,
      }),
    );
    expect(message).toContain(
      `could not fetch branch main of the repository ${server.url('r.git')}`,
    );
    expect(message).not.toContain('WRONG-TOKEN-1');
    expect(message).not.toContain(TOKEN);
    expect(readdirSync(temp)).toEqual([]);
  });
});

describe('berth env diff on a remote repository', () => {
  it("fetches with the environment's credentials where the server's policy allows", async () => {
    const store = SqliteStore.open(join(dir, 'data'));
    await store.migrate();
    const admin = { tokenId: 'tok_admin', tokenName: 'admin', admin: true };
    try {
      const box = SecretBox.fromKey(randomBytes(32));
      const service = new EnvironmentService({
        store,
        secretBox: box,
        allowLocalRepositories: false,
        readRepositoryHeads: () => Promise.resolve(undefined),
        addressPolicy: allow,
      });
      const head = commitFile('setup: echo diff\nenv:\n  SHARED: file\n');
      const created = await service.create(admin, {
        spec: {
          name: 'remote-diff',
          repository: {
            url: server.url('r.git'),
            defaultBranch: 'main',
            config: FILE,
            credentials: { secret: 'GIT_TOKEN', username: credentials.username },
          },
          secrets: ['GIT_TOKEN'],
          env: { SHARED: 'environment' },
        },
        secrets: { GIT_TOKEN: TOKEN },
      });
      const diff = await service.templates.repositoryFileDiff(created, undefined);
      expect(diff.commit).toBe(head);
      expect(diff.fields).toContainEqual({
        field: 'env',
        state: 'both',
        environment: { SHARED: 'environment' },
        file: { SHARED: 'file' },
      });
      // Without the operator's allow, the loopback server is not asked.
      const before = server.requests.length;
      // The same store and secrets, a service without the policy:
      const plain = new EnvironmentService({
        store,
        secretBox: box,
        allowLocalRepositories: false,
        readRepositoryHeads: () => Promise.resolve(undefined),
      });
      const refused = await failure(plain.templates.repositoryFileDiff(created, undefined));
      expect(refused).toContain('BERTH_SETUP_ALLOW');
      expect(server.requests.length).toBe(before);
      expect(readdirSync(temp)).toEqual([]);
      commitFile(null);
    } finally {
      await store.close();
    }
  });
});

describe('repository.config on a remote repository: the address policy', () => {
  const loopback = countConnectionsAround();

  it('does not connect to a loopback address without the allow (literal or by name)', async () => {
    const before = server.requests.length;
    for (const url of [
      server.url('r.git'),
      `http://127.0.0.1:${loopback.port}/r.git`,
      `https://localhost:${loopback.port}/r.git`,
      `git://127.0.0.1:${loopback.port}/r.git`,
    ]) {
      const spec = { ...environment().spec };
      spec.repository = { ...spec.repository, url };
      const message = await failure(
        repositoryConfigNow({ spec }, spec, noTemplates, {
          allowLocal: false,
          remote: { credentials },
        }),
      );
      expect(message).toContain('BERTH_SETUP_ALLOW');
      expect(message).not.toContain(TOKEN);
    }
    expect(loopback.count()).toBe(0);
    expect(server.requests.length).toBe(before);
    expect(readdirSync(temp)).toEqual([]);
  });

  it('fetches an ssh repository through the vetted address with the key session, the key removed after', async () => {
    const ssh = `ssh://git@localhost:${loopback.port}/r`;
    const read = (addressPolicy?: { allow: string[] }) => {
      const spec = { ...environment().spec };
      spec.repository = { ...spec.repository, url: ssh };
      return failure(
        repositoryConfigNow({ spec }, spec, noTemplates, {
          allowLocal: false,
          remote: { credentials: { username: 'git', password: KEY }, addressPolicy },
        }),
      );
    };
    const refused = await read();
    expect(refused).toContain('BERTH_SETUP_ALLOW');
    expect(refused).not.toContain('PRIVATE KEY');
    expect(loopback.count()).toBe(0);
    // Allowed by the operator: ssh connects to the vetted address (no sshd here, so it fails).
    const allowed = await read(allow);
    expect(allowed).toContain(`could not fetch branch main of the repository ${ssh}`);
    expect(allowed).not.toContain('PRIVATE KEY');
    expect(loopback.count()).toBe(1);
    expect(readdirSync(temp)).toEqual([]);
  });

  it("does not connect to one of this machine's own addresses, even inside an allowed range", async () => {
    const own = machineAddresses().find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)) ?? '';
    const listener = await countConnections(own);
    try {
      const spec = { ...environment().spec };
      spec.repository = { ...spec.repository, url: `http://${own}:${listener.port}/r.git` };
      const message = await failure(
        repositoryConfigNow({ spec }, spec, noTemplates, {
          allowLocal: false,
          remote: { credentials, addressPolicy: { allow: [`${own}/32`] } },
        }),
      );
      expect(message).toContain("one of this machine's own addresses");
      expect(listener.count()).toBe(0);
    } finally {
      await listener.close();
    }
  });
});
