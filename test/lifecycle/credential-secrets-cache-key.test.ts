import { describe, expect, it } from 'vitest';
import { cacheKey, cacheKeyParts } from '../../src/domain/cache/cache-key.js';
import type { CacheEntry } from '../../src/domain/cache/cache-entry.js';
import { parseEnvironmentFile } from '../../src/domain/environment/environment-file.js';
import { scriptSecrets } from '../../src/domain/environment/internet-grants.js';
import { currentKeyInputs } from '../../src/lifecycle/cache-key-now.js';

/** Issue 19 item 1: a secret used only as a proxy credential rebuilds nothing when it changes. */
const spec = parseEnvironmentFile(`name: api
repository: https://git.example.test/acme/api.git
secrets: [API_TOKEN, NPM_TOKEN]
setup: npm ci
internet:
  access: allowlist
  domains: [api.example.test]
  credentials: [{ host: api.example.test, header: Authorization, secret: API_TOKEN }]
`);

function key(secrets: Record<string, string>): string {
  return cacheKey(
    cacheKeyParts({
      environmentId: 'env_1',
      baseImageDigest: 'sha256:base',
      repository: { url: spec.repository.url, defaultBranch: 'main' },
      versions: spec.versions,
      setup: spec.setup,
      maintenance: spec.maintenance,
      env: spec.env,
      // What the attempt runner puts into the key.
      secrets: scriptSecrets(spec, secrets),
    }),
  );
}

describe('the cache key and a credential-only secret', () => {
  it('changing the credential secret keeps the key; changing another secret changes it', () => {
    const before = key({ API_TOKEN: 'one', NPM_TOKEN: 'npm' });
    expect(key({ API_TOKEN: 'two', NPM_TOKEN: 'npm' })).toBe(before);
    expect(key({ API_TOKEN: 'one', NPM_TOKEN: 'other' })).not.toBe(before);
  });

  it('env cache show (currentKeyInputs) leaves it out of the digests it compares', async () => {
    const runtime = { inspectImage: () => Promise.resolve({ id: 'sha256:base', labels: {} }) };
    const entry = { id: 'cache_1', parts: { baseImage: 'sha256:base' } } as unknown as CacheEntry;
    const inputs = await currentKeyInputs(
      runtime as never,
      { id: 'env_1', spec },
      { API_TOKEN: 'one', NPM_TOKEN: 'npm' },
      [entry],
      (name) => name,
    );
    expect(Object.keys(inputs.get('cache_1')?.secretDigests ?? {})).toEqual(['NPM_TOKEN']);
  });
});
