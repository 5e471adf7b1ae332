import { describe, expect, it } from 'vitest';
import {
  cacheKey,
  cacheKeyParts,
  explainChange,
  type CacheKeyInput,
} from '../../src/domain/cache/cache-key.js';
import { canonicalJson } from '../../src/domain/cache/canonical-json.js';

const base: CacheKeyInput = {
  environmentId: 'env_1',
  baseImageDigest: 'sha256:aaa',
  repository: { url: 'https://git.example/app.git', defaultBranch: 'main' },
  versions: { node: '22' },
  setup: { script: 'npm ci\n', strict: true },
  maintenance: { script: 'npm install\n', strict: true },
  env: { NODE_ENV: 'test', A: '1' },
  secrets: { NPM_TOKEN: 's3cret-value' },
};

const keyOf = (input: CacheKeyInput) => cacheKey(cacheKeyParts(input));

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });
});

describe('cache key', () => {
  it('is stable for equal inputs whatever the key order', () => {
    const reordered: CacheKeyInput = { ...base, env: { A: '1', NODE_ENV: 'test' } };
    expect(keyOf(reordered)).toBe(keyOf(base));
    expect(keyOf(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes when any part changes', () => {
    const variants: CacheKeyInput[] = [
      { ...base, baseImageDigest: 'sha256:bbb' },
      { ...base, repository: { url: base.repository.url, defaultBranch: 'develop' } },
      { ...base, repository: { url: 'https://git.example/other.git', defaultBranch: 'main' } },
      { ...base, versions: { node: '20' } },
      { ...base, setup: { script: 'npm ci\nnpm run build\n', strict: true } },
      { ...base, setup: { script: 'npm ci\n', strict: false } },
      { ...base, maintenance: undefined },
      { ...base, env: { NODE_ENV: 'production', A: '1' } },
      { ...base, secrets: { NPM_TOKEN: 'another' } },
      { ...base, environmentId: 'env_2' },
    ];
    const keys = new Set([keyOf(base), ...variants.map(keyOf)]);
    expect(keys.size).toBe(variants.length + 1);
  });

  it('never carries a secret value in its parts', () => {
    const parts = cacheKeyParts(base);
    expect(canonicalJson(parts)).not.toContain('s3cret-value');
    expect(parts.secrets.NPM_TOKEN).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('explainChange', () => {
  it('names each changed part without values', () => {
    const before = cacheKeyParts(base);
    const after = cacheKeyParts({
      ...base,
      setup: { script: 'npm ci --prefer-offline\n', strict: true },
      env: { NODE_ENV: 'production', B: '2' },
      secrets: { NPM_TOKEN: 'rotated', GH_TOKEN: 'x' },
      versions: { node: '22', python: '3.12' },
    });
    expect(explainChange(before, after)).toEqual([
      'python version added',
      'setup script changed',
      'variable A removed',
      'variable B added',
      'variable NODE_ENV changed',
      'secret GH_TOKEN added',
      'secret NPM_TOKEN changed',
    ]);
  });

  it('is empty for equal parts and names base image and branch changes', () => {
    expect(explainChange(cacheKeyParts(base), cacheKeyParts(base))).toEqual([]);
    const after = cacheKeyParts({
      ...base,
      baseImageDigest: 'sha256:new',
      repository: { ...base.repository, defaultBranch: 'trunk' },
      maintenance: undefined,
    });
    expect(explainChange(cacheKeyParts(base), after)).toEqual([
      'base image changed',
      'default branch changed',
      'maintenance script removed',
    ]);
  });
});
