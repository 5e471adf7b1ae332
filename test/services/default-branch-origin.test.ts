import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { findAssumedDefaultBranch } from '../../src/lifecycle/assumed-default-branch.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { EnvironmentService } from '../../src/services/environment-service.js';

/**
 * Where an environment's default branch came from (issue 20 item 1), with a real SQLite store and
 * a real git repository whose default branch is `master`: `found` when the remote was asked,
 * `named` when written, `assumed` when the remote could not be asked; and the attempt-start
 * finder (assumed-default-branch.ts) replaces only an assumed one, keeping it when asking fails.
 */

const caller = { tokenId: 'tok_admin', tokenName: 'admin', admin: true };
let dir: string;
let repo: string;
let store: SqliteStore;
let service: EnvironmentService;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-origin-'));
  repo = join(dir, 'repo');
  execFileSync('git', ['init', '-q', '-b', 'master', repo]);
  writeFileSync(join(repo, 'README.md'), 'x\n');
  execFileSync('git', ['-C', repo, 'add', '-A']);
  execFileSync('git', [
    '-C',
    repo,
    '-c',
    'user.name=t',
    '-c',
    'user.email=t@t',
    'commit',
    '-qm',
    'one',
  ]);
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

describe('the default branch origin', () => {
  it('is found, named or assumed when the environment is written', async () => {
    const url = pathToFileURL(repo).href;
    const found = await service.create(caller, { spec: { name: 'found', repository: url } });
    expect(found.spec.repository.defaultBranch).toBe('master');
    expect(found.defaultBranchOrigin).toBe('found');
    const named = await service.create(caller, {
      spec: { name: 'named', repository: { url, defaultBranch: 'master' } },
    });
    expect(named.defaultBranchOrigin).toBe('named');
    // A name reserved for tests is not asked: the branch is assumed.
    const assumed = await service.create(caller, {
      spec: { name: 'assumed', repository: 'https://git.test/acme/app.git' },
    });
    expect(assumed.spec.repository.defaultBranch).toBe('main');
    expect(assumed.defaultBranchOrigin).toBe('assumed');
    // An update that names the branch makes it named.
    const updated = await service.update(caller, 'assumed', {
      spec: {
        name: 'assumed',
        repository: { url: 'https://git.test/acme/app.git', defaultBranch: 'trunk' },
      },
    });
    expect(updated.defaultBranchOrigin).toBe('named');
  });

  it('is asked at the attempt start only when assumed, and kept when asking fails', async () => {
    const url = pathToFileURL(repo).href;
    const base = await store.getEnvironmentByName('found');
    if (base === undefined) throw new Error('no environment');
    const assumed = await store.updateEnvironment(base.id, {
      spec: { ...base.spec, repository: { url, defaultBranch: 'main' } },
      setSecrets: [],
      removeSecrets: [],
      now: new Date().toISOString(),
      defaultBranchOrigin: 'assumed',
    });
    // Local repositories not allowed on this server: not asked.
    const refused = await findAssumedDefaultBranch(assumed, undefined, {
      store,
      allowLocalRepositories: false,
    });
    expect(refused.log).toBeUndefined();
    expect(refused.environment.spec.repository.defaultBranch).toBe('main');
    // A remote that does not answer: the attempt goes on with the assumed branch.
    const failing = await findAssumedDefaultBranch(assumed, undefined, {
      store,
      allowLocalRepositories: true,
      readHeads: () => Promise.reject(new Error('unreachable')),
    });
    expect(failing.environment.spec.repository.defaultBranch).toBe('main');
    expect((await store.getEnvironmentById(base.id))?.defaultBranchOrigin).toBe('assumed');

    const result = await findAssumedDefaultBranch(assumed, undefined, {
      store,
      allowLocalRepositories: true,
    });
    expect(result.log).toBe('default branch: master (found on the remote)');
    expect(result.environment.spec.repository.defaultBranch).toBe('master');
    const stored = await store.getEnvironmentById(base.id);
    expect(stored?.spec.repository.defaultBranch).toBe('master');
    expect(stored?.defaultBranchOrigin).toBe('found');

    // A named branch is never replaced, even one the remote does not have.
    const named = await store.updateEnvironment(base.id, {
      spec: { ...base.spec, repository: { url, defaultBranch: 'main' } },
      setSecrets: [],
      removeSecrets: [],
      now: new Date().toISOString(),
      defaultBranchOrigin: 'named',
    });
    const kept = await findAssumedDefaultBranch(named, undefined, {
      store,
      allowLocalRepositories: true,
    });
    expect(kept.log).toBeUndefined();
    expect((await store.getEnvironmentById(base.id))?.spec.repository.defaultBranch).toBe('main');
  });
});
