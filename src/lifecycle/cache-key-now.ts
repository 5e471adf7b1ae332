import { secretDigest } from '../domain/cache/cache-key.js';
import type { CacheEntry } from '../domain/cache/cache-entry.js';
import type { CurrentKeyInputs } from '../domain/cache/cache-staleness.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import { scriptSecrets } from '../domain/environment/internet-grants.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import { resolveImageName } from './image-names.js';
import { templateDigests } from '../domain/environment/environment-template.js';
import type { Store } from '../ports/store.js';
import { repositoryConfigNow } from './repository-config-now.js';
import type { RemoteFetchAccess } from './remote-branch-head.js';

/** The label a language image (pinned versions on a base) carries with its base image's id. */
const LANGUAGE_BASE_LABEL = 'berth.base.id';

/**
 * The parts of the cache key that the store alone cannot tell, as they are now, for each of an
 * environment's entries (`env cache show`'s `stale`): whether the entry's base image is still
 * the image its environment names (for pinned language versions, the language image the entry
 * started from must be built on that image: its `berth.base.id`), and the secrets' digests as
 * a task would put them into its key (`secretDigest`, salted with the environment id; secrets
 * used only as proxy credentials are not in the key). What
 * cannot be found (the engine does not answer, the image is missing) is left unknown.
 */
export async function currentKeyInputs(
  runtime: Pick<SandboxRuntime, 'inspectImage'>,
  environment: { id: string; spec: EnvironmentSpec },
  secrets: Readonly<Record<string, string>> | undefined,
  entries: readonly CacheEntry[],
  resolveImage: (name: string) => string = resolveImageName,
  /** What `specKeyInputs` found (templates, repository file); the same for every entry. */
  fromSpec: Pick<CurrentKeyInputs, 'spec' | 'templateDigests' | 'repositoryFile'> = {},
): Promise<Map<string, CurrentKeyInputs>> {
  const base = await runtime
    .inspectImage(resolveImage(environment.spec.image))
    .catch(() => undefined);
  const secretDigests =
    secrets === undefined
      ? undefined
      : Object.fromEntries(
          Object.entries(scriptSecrets(environment.spec, secrets)).map(([name, value]) => [
            name,
            secretDigest(environment.id, name, value),
          ]),
        );
  const pinned = Object.values(environment.spec.versions).some((v) => v !== undefined);
  const out = new Map<string, CurrentKeyInputs>();
  for (const entry of entries) {
    let baseImageCurrent: boolean | undefined;
    if (base !== undefined) {
      if (entry.parts.baseImage === base.id) baseImageCurrent = true;
      else if (!pinned) baseImageCurrent = false;
      else {
        const language = await runtime.inspectImage(entry.parts.baseImage).catch(() => undefined);
        const on = language?.labels[LANGUAGE_BASE_LABEL];
        baseImageCurrent = on === undefined ? undefined : on === base.id;
      }
    }
    out.set(entry.id, { baseImageCurrent, secretDigests, ...fromSpec });
  }
  return out;
}

/**
 * The key's parts an attempt would take from beyond the stored spec (issue 16): the templates'
 * digests, and for `repository.config` the spec with the repository file merged in and the
 * file's digest, as the scheduler finds them. What cannot be found now (a file that does not
 * parse, a repository gone) is left unknown.
 */
export async function specKeyInputs(
  store: Pick<Store, 'getTemplateByName' | 'getWrittenSpec'>,
  environment: { id: string; spec: EnvironmentSpec },
  /** An https, http, git:// or ssh repository's credentials and address policy (the attempt's). */
  remote?: RemoteFetchAccess,
): Promise<Pick<CurrentKeyInputs, 'spec' | 'templateDigests' | 'repositoryFile'>> {
  const lookup = async (name: string) => (await store.getTemplateByName(name))?.spec;
  const digests = await templateDigests(environment.spec, lookup).catch(() => undefined);
  if (environment.spec.repository.config === undefined) return { templateDigests: digests };
  const written = (await store.getWrittenSpec(environment.id))?.spec;
  const file = await repositoryConfigNow(environment, written, lookup, {
    allowLocal: true,
    ...(remote !== undefined ? { remote } : {}),
  }).catch(() => undefined);
  return file === undefined
    ? { templateDigests: digests }
    : { templateDigests: digests, spec: file.spec, repositoryFile: file.file };
}
