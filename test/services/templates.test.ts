import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { cacheKey, cacheKeyParts, explainChange } from '../../src/domain/cache/cache-key.js';
import {
  TEMPLATE_CHAIN_MAX_DEPTH,
  templateDigests,
} from '../../src/domain/environment/environment-template.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { staleCacheParts } from '../../src/domain/cache/cache-staleness.js';
import { specKeyInputs } from '../../src/lifecycle/cache-key-now.js';
import { EnvironmentService } from '../../src/services/environment-service.js';
import type { StoredEnvironment } from '../../src/ports/store.js';

/**
 * Templates (issue 16) with a real SQLite store: `extends` merges as documented, bad chains and
 * unknown templates are refused with nothing stored, a template change merges the environments
 * built on it again and changes their cache keys ("template base changed"), and deleting an
 * extended template is refused with the environments' names.
 */

const admin = { tokenId: 'tok_admin', tokenName: 'admin', admin: true };
const alice = { tokenId: 'tok_alice', tokenName: 'alice', admin: false };
let dir: string;
let store: SqliteStore;
let service: EnvironmentService;

const base = {
  name: 'base',
  description: 'what every service here needs',
  image: 'minimal',
  versions: { node: '22' },
  setup: 'npm ci',
  env: { NODE_ENV: 'test', REGION: 'eu' },
  internet: {
    access: 'allowlist',
    presets: ['common-dependencies'],
    domains: ['mirror.example.test'],
  },
  resources: { cpus: 4 },
  services: [{ name: 'db', command: 'start-db' }],
};

const repo = (name: string) => `https://git.example.test/acme/${name}.git`;

/** The cache key parts of an environment now, as the scheduler and attempt runner make them. */
async function keyParts(environment: StoredEnvironment) {
  return cacheKeyParts({
    environmentId: environment.id,
    baseImageDigest: 'sha256:base',
    repository: environment.spec.repository,
    versions: environment.spec.versions,
    setup: environment.spec.setup,
    maintenance: environment.spec.maintenance,
    env: environment.spec.env,
    secrets: {},
    templates: await templateDigests(
      environment.spec,
      async (name) => (await store.getTemplateByName(name))?.spec,
    ),
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-templates-'));
  store = SqliteStore.open(join(dir, 'data'));
  await store.migrate();
  service = new EnvironmentService({
    store,
    secretBox: SecretBox.fromKey(randomBytes(32)),
    allowLocalRepositories: false,
    readRepositoryHeads: () => Promise.resolve(undefined),
  });
  await service.templates.create(admin, base);
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('templates', () => {
  it('only an admin token writes a template; any token reads them', async () => {
    await expect(service.templates.create(alice, { name: 'mine' })).rejects.toMatchObject({
      code: 'forbidden',
    });
    expect((await service.templates.get(alice, 'base')).spec.image).toBe('minimal');
    expect((await service.templates.list(alice)).map((t) => t.name)).toEqual(['base']);
  });

  it('refuses a template with what belongs to one environment, or a bad field, with the path', async () => {
    await expect(
      service.templates.create(admin, { name: 'x', repository: repo('x') }),
    ).rejects.toThrow(/repository: unknown field "repository" \(a template holds no repository/);
    await expect(
      service.templates.create(admin, { name: 'x', env: { BERTH_X: '1' } }),
    ).rejects.toThrow(/^template x: env\.BERTH_X: /);
    await expect(store.getTemplateByName('x')).resolves.toBeUndefined();
  });

  it('merges: template fields are defaults, the environment wins; domains and presets union; env keyed', async () => {
    const created = await service.create(admin, {
      spec: {
        name: 'shop',
        extends: 'base',
        repository: repo('shop'),
        setup: 'npm install',
        env: { REGION: 'us', EXTRA: '1' },
        internet: { domains: ['api.example.test'] },
        resources: { memoryMb: 2048 },
        services: [{ name: 'db', command: 'start-other-db' }],
      },
    });
    const spec = created.spec;
    expect(spec.extends).toBe('base');
    expect(spec.image).toBe('minimal');
    expect(spec.versions).toEqual({ node: '22' });
    expect(spec.setup?.script).toBe('npm install');
    expect(spec.env).toEqual({ NODE_ENV: 'test', REGION: 'us', EXTRA: '1' });
    expect(spec.internet.access).toBe('allowlist');
    expect(spec.internet.presets).toEqual(['common-dependencies']);
    expect(spec.internet.domains).toEqual(['mirror.example.test', 'api.example.test']);
    expect(spec.resources.cpus).toBe(4);
    expect(spec.resources.memoryMb).toBe(2048);
    expect(spec.services.map((s) => s.command)).toEqual(['start-other-db']);
  });

  it('an environment that writes the default image still wins over the template', async () => {
    const created = await service.create(admin, {
      spec: { name: 'explicit', extends: 'base', repository: repo('e'), image: 'universal' },
    });
    expect(created.spec.image).toBe('universal');
  });

  it('refuses an unknown template and stores nothing', async () => {
    await expect(
      service.create(admin, { spec: { name: 'orphan', extends: 'nope', repository: repo('o') } }),
    ).rejects.toMatchObject({
      code: 'invalid_environment',
      message: expect.stringMatching(/extends: no template named "nope"/) as unknown,
    });
    await expect(store.getEnvironmentByName('orphan')).resolves.toBeUndefined();
  });

  it('refuses a cycle and a chain longer than the documented depth', async () => {
    await service.templates.create(admin, { name: 'cyc-a', extends: 'base' });
    await service.templates.create(admin, { name: 'cyc-b', extends: 'cyc-a' });
    await expect(
      service.templates.update(admin, 'cyc-a', { name: 'cyc-a', extends: 'cyc-b' }),
    ).rejects.toThrow(/cycle \(cyc-a → cyc-b → cyc-a\)/);
    await expect(
      service.templates.create(admin, { name: 'self', extends: 'self' }),
    ).rejects.toThrow(/cycle \(self → self\)/);

    let parent = 'base';
    for (let i = 1; i < TEMPLATE_CHAIN_MAX_DEPTH; i++) {
      await service.templates.create(admin, { name: `deep-${i}`, extends: parent });
      parent = `deep-${i}`;
    }
    // A chain of exactly the depth is fine for an environment…
    const ok = await service.create(admin, {
      spec: { name: 'deep-ok', extends: parent, repository: repo('d') },
    });
    expect(ok.spec.image).toBe('minimal');
    // …one more template on top is refused, and so is an environment on it.
    await expect(
      service.templates.create(admin, { name: 'too-deep', extends: parent }),
    ).rejects.toThrow(/a chain of templates may be at most 4 long/);
  });

  it('a template change merges two environments again and changes both cache keys, saying why', async () => {
    await service.templates.create(admin, { name: 'org', setup: 'echo one', env: { A: '1' } });
    const one = await service.create(admin, {
      spec: { name: 'one', extends: 'org', repository: repo('one') },
    });
    const two = await service.create(admin, {
      spec: { name: 'two', extends: 'org', repository: repo('two'), setup: 'echo own' },
    });
    const before = [await keyParts(one), await keyParts(two)];

    const { environments } = await service.templates.update(admin, 'org', {
      name: 'org',
      setup: 'echo two',
      env: { A: '1' },
    });
    expect(environments.sort()).toEqual(['one', 'two']);

    const oneNow = await service.get(admin, 'one');
    const twoNow = await service.get(admin, 'two');
    expect(oneNow.spec.setup?.script).toBe('echo two');
    expect(oneNow.revision).toBe(one.revision + 1);
    expect(twoNow.spec.setup?.script).toBe('echo own');
    const after = [await keyParts(oneNow), await keyParts(twoNow)];
    for (let i = 0; i < 2; i++) {
      expect(cacheKey(after[i]!)).not.toBe(cacheKey(before[i]!));
      expect(explainChange(before[i]!, after[i]!)).toContain('template org changed');
    }
    // The environment that keeps its own setup changed only through the template.
    expect(explainChange(before[1]!, after[1]!)).toEqual(['template org changed']);
    // env cache show: both entries built before the change are stale because of the template.
    expect(staleCacheParts(before[1]!, twoNow.spec, await specKeyInputs(store, twoNow))).toEqual([
      'templates',
    ]);
    expect(staleCacheParts(after[1]!, twoNow.spec, await specKeyInputs(store, twoNow))).toEqual([]);
  });

  it('an environment without extends keeps the key it had (no templates part)', async () => {
    const plain = await service.create(admin, { spec: { name: 'plain', repository: repo('p') } });
    expect((await keyParts(plain)).templates).toBeUndefined();
  });

  it('refuses a template change that would make an environment invalid, naming it, changing nothing', async () => {
    await service.templates.create(admin, { name: 'net', internet: { access: 'allowlist' } });
    await service.create(admin, {
      spec: {
        name: 'netted',
        extends: 'net',
        repository: repo('n'),
        internet: { domains: ['x.example.test'] },
      },
    });
    await expect(
      service.templates.update(admin, 'net', { name: 'net', internet: { access: 'off' } }),
    ).rejects.toThrow(/the change would make environment "netted" invalid: .*internet\.domains/);
    expect((await service.templates.get(admin, 'net')).revision).toBe(1);
  });

  it('deleting an extended template is refused with the environments and templates that extend it', async () => {
    await expect(service.templates.delete(admin, 'org')).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/extended by environments one, two/) as unknown,
    });
    await expect(service.templates.delete(admin, 'base')).rejects.toThrow(
      /extended by environments explicit, shop and templates cyc-a, deep-1;/,
    );
    // Once nothing extends it, it goes.
    await service.update(admin, 'one', { spec: { name: 'one', repository: repo('one') } });
    await service.update(admin, 'two', { spec: { name: 'two', repository: repo('two') } });
    await service.templates.delete(admin, 'org');
    await expect(store.getTemplateByName('org')).resolves.toBeUndefined();
    // Deleting the environment drops what it wrote.
    const shop = await service.get(admin, 'shop');
    await service.delete(admin, 'shop');
    await expect(store.getWrittenSpec(shop.id)).resolves.toBeUndefined();
  });
});
