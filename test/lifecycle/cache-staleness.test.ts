import { describe, expect, it } from 'vitest';
import { cacheKeyParts, secretDigest } from '../../src/domain/cache/cache-key.js';
import { staleCacheParts } from '../../src/domain/cache/cache-staleness.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';

/**
 * Issue 20 item 6: `env cache show` calls an entry `stale` when any part of its key no longer
 * matches, the base image and the secrets' values included (found by the caller, given here).
 */
const spec = parseEnvironmentSpec({
  name: 'stale',
  repository: 'https://git.example/acme/app.git',
  setup: 'true',
});
const parts = cacheKeyParts({
  environmentId: 'env_1',
  baseImageDigest: 'sha256:base',
  repository: { url: spec.repository.url, defaultBranch: spec.repository.defaultBranch },
  versions: spec.versions,
  setup: spec.setup,
  env: spec.env,
  secrets: { TOKEN: 'first' },
});

describe('stale cache parts', () => {
  it('nothing changed: not stale, whatever is unknown', () => {
    expect(staleCacheParts(parts, spec)).toEqual([]);
    expect(
      staleCacheParts(parts, spec, {
        baseImageCurrent: true,
        secretDigests: { TOKEN: secretDigest('env_1', 'TOKEN', 'first') },
      }),
    ).toEqual([]);
  });

  it('a rebuilt base image and a changed, added or removed secret are stale', () => {
    expect(staleCacheParts(parts, spec, { baseImageCurrent: false })).toEqual(['baseImage']);
    const digests = (values: Record<string, string>) =>
      Object.fromEntries(Object.entries(values).map(([n, v]) => [n, secretDigest('env_1', n, v)]));
    expect(staleCacheParts(parts, spec, { secretDigests: digests({ TOKEN: 'second' }) })).toEqual([
      'secrets',
    ]);
    expect(
      staleCacheParts(parts, spec, { secretDigests: digests({ TOKEN: 'first', MORE: 'x' }) }),
    ).toEqual(['secrets']);
    expect(staleCacheParts(parts, spec, { secretDigests: {} })).toEqual(['secrets']);
  });
});
