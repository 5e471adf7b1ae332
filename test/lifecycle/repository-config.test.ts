import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { cacheKeyParts, explainChange } from '../../src/domain/cache/cache-key.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import { repositoryConfigNow } from '../../src/lifecycle/repository-config-now.js';
import { specKeyInputs } from '../../src/lifecycle/cache-key-now.js';
import { staleCacheParts } from '../../src/domain/cache/cache-staleness.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { EnvironmentService } from '../../src/services/environment-service.js';

/**
 * `repository.config` without Docker (issue 16 item 1), on a real git repository and a real
 * SQLite store: the path must stay inside the repository; the file must be at the commit and
 * valid when the environment is written (refused with the path, or the field path, line and
 * column); its fields merge under what the environment wrote; its content is part of the cache
 * key ("repository file .berth/environment.yaml changed"); another repository's file is read at the
 * attempt (repository-config-remote.test.ts).
 */

const admin = { tokenId: 'tok_admin', tokenName: 'admin', admin: true };
let dir: string;
let repo: string;
let store: SqliteStore;
let service: EnvironmentService;

function git(...args: string[]): string {
  return execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
    encoding: 'utf8',
  }).trim();
}

function commitFile(text: string): string {
  writeFileSync(join(repo, '.berth', 'environment.yaml'), text);
  git('add', '-A');
  git('commit', '-qm', 'environment file');
  return git('rev-parse', 'HEAD');
}

const lookup = async (name: string) => (await store.getTemplateByName(name))?.spec;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-repofile-'));
  repo = join(dir, 'repo');
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  mkdirSync(join(repo, '.berth'));
  writeFileSync(join(repo, 'README.md'), 'x\n');
  git('add', '-A');
  git('commit', '-qm', 'one');
  store = SqliteStore.open(join(dir, 'data'));
  await store.migrate();
  service = new EnvironmentService({
    store,
    secretBox: SecretBox.fromKey(randomBytes(32)),
    allowLocalRepositories: true,
  });
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const spec = (config: string, extra: Record<string, unknown> = {}) => ({
  name: 'repofile',
  repository: { url: repo, defaultBranch: 'main', config },
  ...extra,
});

describe('repository.config', () => {
  it('refuses a path outside the repository, with the path', () => {
    for (const path of ['../x.yaml', '/etc/passwd', 'a/../../b', '.berth//x', 'C:/x'])
      expect(() => parseEnvironmentSpec(spec(path))).toThrow(
        /repository\.config: must be a path inside the repository/,
      );
  });

  it('refuses a file missing at the commit, with the path and commit', async () => {
    await expect(service.create(admin, { spec: spec('.berth/environment.yaml') })).rejects.toThrow(
      /repository\.config: \.berth\/environment\.yaml: not in the repository at commit [0-9a-f]{12} \(branch main\)/,
    );
    await expect(store.getEnvironmentByName('repofile')).resolves.toBeUndefined();
  });

  it('refuses a bad file with the field path, line and column, and a field that stays in the store', async () => {
    commitFile('setup: make\nenv:\n  BERTH_X: "1"\n');
    await expect(service.create(admin, { spec: spec('.berth/environment.yaml') })).rejects.toThrow(
      /repository file \.berth\/environment\.yaml: env\.BERTH_X: .*\(line 3, column \d+\)/,
    );
    commitFile('setup: make\nsecrets: [TOKEN]\n');
    await expect(service.create(admin, { spec: spec('.berth/environment.yaml') })).rejects.toThrow(
      /repository file \.berth\/environment\.yaml: secrets: not a field of a repository file .*\(line 2, column 1\)/,
    );
  });

  it('accepts a repository that is not local: its file is read at the attempt (repository-config-remote.test.ts)', async () => {
    const created = await service.create(admin, {
      spec: {
        name: 'remote',
        repository: {
          url: 'http://127.0.0.1:9/a/b.git',
          defaultBranch: 'main',
          config: '.berth/environment.yaml',
        },
      },
    });
    expect(created.spec.repository.config).toBe('.berth/environment.yaml');
    await service.delete(admin, 'remote');
  });

  it('merges the file under the environment, and its content changes the cache key with the reason', async () => {
    const first = commitFile(
      'setup: echo from-the-file\nenv:\n  FROM_FILE: one\n  SHARED: file\nverify: ./test.sh\n',
    );
    const created = await service.create(admin, {
      spec: spec('.berth/environment.yaml', { image: 'minimal', env: { SHARED: 'environment' } }),
    });
    const now = async () => {
      const env = await service.get(admin, 'repofile');
      const written = (await store.getWrittenSpec(env.id))?.spec;
      return await repositoryConfigNow(env, written, lookup, { allowLocal: true });
    };
    const one = await now();
    expect(one?.commit).toBe(first);
    expect(one?.spec.setup?.script).toBe('echo from-the-file');
    expect(one?.spec.env).toEqual({ FROM_FILE: 'one', SHARED: 'environment' });
    expect(one?.spec.verify).toBe('./test.sh');
    expect(one?.spec.image).toBe('minimal');
    // The stored environment itself has no setup: it lives in the repository.
    expect(created.spec.setup).toBeUndefined();

    const parts = (r: NonNullable<typeof one>) =>
      cacheKeyParts({
        environmentId: created.id,
        baseImageDigest: 'sha256:base',
        repository: r.spec.repository,
        versions: r.spec.versions,
        setup: r.spec.setup,
        maintenance: r.spec.maintenance,
        env: r.spec.env,
        secrets: {},
        repositoryFile: r.file,
      });
    // env cache show: the entry built from this file is live (its setup is the file's, not
    // missing from the stored spec), and stale once a commit changes the file.
    const stored = await service.get(admin, 'repofile');
    expect(staleCacheParts(parts(one!), stored.spec, await specKeyInputs(store, stored))).toEqual(
      [],
    );
    commitFile('setup: echo changed\nenv:\n  FROM_FILE: one\n  SHARED: file\nverify: ./test.sh\n');
    expect(staleCacheParts(parts(one!), stored.spec, await specKeyInputs(store, stored))).toEqual([
      'setup',
      'repositoryFile',
    ]);
    const two = await now();
    expect(explainChange(parts(one!), parts(two!))).toEqual([
      'setup script changed',
      'repository file .berth/environment.yaml changed',
    ]);

    // A bad file committed later fails the attempt's start, with line and column.
    commitFile('setup: echo x\nsetpu: typo\n');
    await expect(now()).rejects.toThrow(
      /repository file \.berth\/environment\.yaml: setpu: not a field of a repository file .*\(line 2, column 1\)/,
    );
  });
});

describe("repository.config on the task's branch", () => {
  // Its own repository: main holds one file; each branch commits another one on top of it.
  let branchRepo: string;
  const run = (...args: string[]) =>
    execFileSync('git', ['-C', branchRepo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
      encoding: 'utf8',
    }).trim();
  const onBranch = (branch: string, text: string) => {
    run('checkout', '-q', '-b', branch, 'main');
    writeFileSync(join(branchRepo, '.berth', 'environment.yaml'), text);
    run('commit', '-q', '--allow-empty', '-am', `file on ${branch}`);
    run('checkout', '-q', 'main');
  };
  const mainFile =
    'setup: echo main-setup\nmaintenance: echo main-maintenance\nenv:\n  WHO: main\nverify: ./main.sh\n';
  const atBranch = async (taskBranch: string) => {
    const env = await service.get(admin, 'branchfile');
    const written = (await store.getWrittenSpec(env.id))?.spec;
    return await repositoryConfigNow(env, written, lookup, { allowLocal: true, taskBranch });
  };

  beforeAll(async () => {
    branchRepo = join(dir, 'branch-repo');
    execFileSync('git', ['init', '-q', '-b', 'main', branchRepo]);
    mkdirSync(join(branchRepo, '.berth'));
    writeFileSync(join(branchRepo, '.berth', 'environment.yaml'), mainFile);
    run('add', '-A');
    run('commit', '-qm', 'main file');
    onBranch(
      'new-maintenance',
      mainFile
        .replace('main-maintenance', 'branch-maintenance')
        .replace('WHO: main', 'WHO: branch'),
    );
    onBranch('new-setup', mainFile.replace('main-setup', 'branch-setup'));
    onBranch(
      'new-credentials',
      `${mainFile}internet:\n  access: allowlist\n  domains: [api.example.test]\n  credentials:\n    - { host: api.example.test, header: Authorization, secret: TOKEN }\n`,
    );
    onBranch(
      'open-internet',
      `${mainFile.replace('WHO: main', 'WHO: wide')}internet:\n  access: 'on'\nresources:\n  memoryMb: 8192\n`,
    );
    onBranch('bad-file', `${mainFile}internet:\n  acess: open\n`);
    onBranch('same-file', mainFile);
    await service.create(admin, {
      spec: {
        name: 'branchfile',
        image: 'minimal',
        secrets: ['TOKEN'],
        repository: { url: branchRepo, defaultBranch: 'main', config: '.berth/environment.yaml' },
      },
    });
  });

  const keyOf = (s: {
    versions: Record<string, string>;
    setup?: unknown;
    maintenance?: unknown;
    env: Record<string, string>;
  }) => JSON.stringify([s.versions, s.setup, s.maintenance, s.env]);

  it("runs the branch's maintenance and env after the cache, and logs that the file differs", async () => {
    const main = await atBranch('main');
    expect(main?.cacheSpec).toBeUndefined();
    expect(main?.branchNote).toBeUndefined();
    const now = await atBranch('new-maintenance');
    expect(now?.spec.maintenance?.script).toBe('echo branch-maintenance');
    expect(now?.spec.env).toEqual({ WHO: 'branch' });
    expect(now?.spec.setup?.script).toBe('echo main-setup');
    // The cache key and setup: the default branch's, so the branch shares main's cache entry.
    expect(now?.cacheSpec?.maintenance?.script).toBe('echo main-maintenance');
    expect(now?.cacheSpec?.env).toEqual({ WHO: 'main' });
    expect(keyOf(now!.cacheSpec!)).toBe(keyOf(main!.spec));
    expect(now?.file).toEqual(main?.file);
    expect(now?.branchNote?.kind).toBe('log');
    expect(now?.branchNote?.text).toMatch(
      /^repository file \.berth\/environment\.yaml differs on branch new-maintenance \(commit [0-9a-f]{12}\): maintenance and agent use the branch's \(maintenance, env\)$/,
    );
    // The same file on the branch: nothing to say, one spec.
    const same = await atBranch('same-file');
    expect(same?.branchNote).toBeUndefined();
    expect(same?.cacheSpec).toBeUndefined();
  });

  it("keeps the default branch's setup (the cache is built from it) and says the branch's differs", async () => {
    const now = await atBranch('new-setup');
    expect(now?.spec.setup?.script).toBe('echo main-setup');
    expect(now?.cacheSpec?.setup?.script).toBe('echo main-setup');
    expect(now?.branchNote?.text).toMatch(
      /differs on branch new-setup .*\(no field that applies after the cache differs\); setup stays main's: the cache is built from main's file/,
    );
  });

  it("keeps the default branch's internet and resources: a branch may not widen the grants", async () => {
    const main = await atBranch('main');
    const now = await atBranch('open-internet');
    expect(now?.spec.env).toEqual({ WHO: 'wide' });
    expect(now?.spec.internet).toEqual(main?.spec.internet);
    expect(now?.spec.internet.access).toBe('off');
    expect(now?.spec.resources).toEqual(main?.spec.resources);
    expect(now?.branchNote?.text).toMatch(
      /\(env\); internet, resources stay main's: a branch may not widen what the sandbox may reach or use$/,
    );
  });

  it("refuses internet.credentials in a branch file (where secret values go is not a branch's to say)", async () => {
    // The environment has the secret; a repository file still may not route it.
    await expect(atBranch('new-credentials')).rejects.toThrow(
      /repository file \.berth\/environment\.yaml: internet\.credentials\[0\]\.secret: .*\(line 10, column \d+\)/,
    );
  });

  it('fails early on a bad file on the branch, with the field path, line and column', async () => {
    await expect(atBranch('bad-file')).rejects.toThrow(
      /repository file \.berth\/environment\.yaml: internet\.acess: .*\(line 7, column 3\)/,
    );
  });

  it("warns and runs the default branch's file when the branch has none", async () => {
    run('checkout', '-q', '-b', 'no-file', 'main');
    run('rm', '-q', '.berth/environment.yaml');
    run('commit', '-qm', 'no file');
    run('checkout', '-q', 'main');
    const now = await atBranch('no-file');
    expect(now?.cacheSpec).toBeUndefined();
    expect(now?.spec.maintenance?.script).toBe('echo main-maintenance');
    expect(now?.branchNote?.kind).toBe('warning');
    expect(now?.branchNote?.text).toMatch(
      /differs on the task's branch no-file \(not there\) from main's: this attempt runs main's for every phase/,
    );
  });
});

describe('image: { dockerfile }', () => {
  it('is kept as dockerfile:PATH, its path held inside the repository, and refused on a repository that is not local', async () => {
    expect(
      parseEnvironmentSpec({
        ...spec('.berth/environment.yaml'),
        image: { dockerfile: '.berth/Dockerfile' },
      }).image,
    ).toBe('dockerfile:.berth/Dockerfile');
    expect(() =>
      parseEnvironmentSpec({ name: 'x', repository: repo, image: { dockerfile: '../Dockerfile' } }),
    ).toThrow(
      /image: not a valid image: .*\{ dockerfile: PATH \} with a path inside the repository/,
    );
    await expect(
      service.create(admin, {
        spec: {
          name: 'remote-image',
          repository: 'https://git.example.test/a/b.git',
          image: { dockerfile: '.berth/Dockerfile' },
        },
      }),
    ).rejects.toThrow(
      /image\.dockerfile: \.berth\/Dockerfile: an image is built from local repositories only/,
    );
  });
});
