import type { EnvironmentSpec } from '../environment/environment-spec.js';
import { canonicalJson } from './canonical-json.js';
import type { CacheKeyParts } from './cache-key.js';

/**
 * Which parts of a cache entry's key no longer match its environment as it is now, from what the
 * store holds (no secret value and no engine needed): the repository, language versions, the
 * setup and maintenance scripts and the variables. An entry with any is `stale`: no task of the
 * environment will use it again. Not seen here: a changed secret value and a rebuilt base image
 * (they change the key too, which the next task finds).
 */
export function staleCacheParts(parts: CacheKeyParts, spec: EnvironmentSpec): string[] {
  const script = (s: EnvironmentSpec['setup']) =>
    s === undefined ? null : { script: s.script, strict: s.strict };
  const now: Record<string, unknown> = {
    repository: { url: spec.repository.url, defaultBranch: spec.repository.defaultBranch },
    versions: Object.fromEntries(Object.entries(spec.versions).filter(([, v]) => v !== undefined)),
    setup: script(spec.setup),
    maintenance: script(spec.maintenance),
    env: spec.env,
  };
  const then: Record<string, unknown> = {
    repository: parts.repository,
    versions: parts.versions,
    setup: parts.setup,
    maintenance: parts.maintenance,
    env: parts.env,
  };
  return Object.keys(now).filter((k) => canonicalJson(now[k]) !== canonicalJson(then[k]));
}
