import type { EnvironmentSpec } from '../environment/environment-spec.js';
import { canonicalJson } from './canonical-json.js';
import type { CacheKeyParts } from './cache-key.js';

/**
 * What the key's parts hold now beyond the spec, found by the caller (they need the engine and the
 * secrets' values): whether the entry's base image is still the one a task would start from, and
 * the environment's secrets as the key holds them (name → salted digest, `secretDigest`). An
 * unknown one (undefined) is not counted as a change.
 */
export interface CurrentKeyInputs {
  baseImageCurrent?: boolean | undefined;
  secretDigests?: Readonly<Record<string, string>> | undefined;
  /**
   * The spec a task would run with now when it differs from the stored one (an environment with
   * `repository.config`: its repository file's fields merged in), the templates' digests and the
   * repository file's (issue 16); undefined ones are not counted.
   */
  spec?: EnvironmentSpec | undefined;
  templateDigests?: Readonly<Record<string, string>> | undefined;
  repositoryFile?: { path: string; digest: string } | undefined;
}

/**
 * Which parts of a cache entry's key no longer match its environment as it is now: the
 * repository, language versions, the setup and maintenance scripts and the variables from the
 * spec; the base image (`baseImage`: rebuilt since) and the secrets (`secrets`: a value, or which
 * ones exist, changed) from `current`. An entry with any is `stale`: no task of the environment
 * will use it again.
 */
export function staleCacheParts(
  parts: CacheKeyParts,
  spec: EnvironmentSpec,
  current: CurrentKeyInputs = {},
): string[] {
  if (current.spec !== undefined) spec = current.spec;
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
  const changed = Object.keys(now).filter((k) => canonicalJson(now[k]) !== canonicalJson(then[k]));
  if (current.baseImageCurrent === false) changed.push('baseImage');
  if (
    current.secretDigests !== undefined &&
    canonicalJson(current.secretDigests) !== canonicalJson(parts.secrets)
  )
    changed.push('secrets');
  if (
    current.templateDigests !== undefined &&
    canonicalJson(current.templateDigests) !== canonicalJson(parts.templates ?? {})
  )
    changed.push('templates');
  if (
    current.repositoryFile !== undefined &&
    canonicalJson(current.repositoryFile) !== canonicalJson(parts.repositoryFile ?? null)
  )
    changed.push('repositoryFile');
  return changed;
}
