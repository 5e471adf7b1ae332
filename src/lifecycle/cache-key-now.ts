import { secretDigest } from '../domain/cache/cache-key.js';
import type { CacheEntry } from '../domain/cache/cache-entry.js';
import type { CurrentKeyInputs } from '../domain/cache/cache-staleness.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import { scriptSecrets } from '../domain/environment/internet-grants.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import { resolveImageName } from './image-names.js';

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
    out.set(entry.id, { baseImageCurrent, secretDigests });
  }
  return out;
}
