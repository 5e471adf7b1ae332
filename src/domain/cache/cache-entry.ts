import type { CacheKeyParts } from './cache-key.js';

/**
 * A committed image holding an environment's state right after its setup script. An entry is
 * recorded only after its image was committed, so a half-made one is never found; it is usable
 * until it expires (12 hours by default) or is reset by hand.
 */
export interface CacheEntry {
  id: string;
  environmentId: string;
  key: string;
  parts: CacheKeyParts;
  /** The image reference (`berth-cache:…`) and its content id. */
  image: string;
  imageId: string;
  sizeBytes: number;
  /** The commit of the default branch the setup ran on. */
  commit: string;
  /** Names of the variables the setup script exported (values live in the image). */
  exportNames: string[];
  createdAt: string;
  expiresAt: string;
}

/** Whether an entry may still be used at `now`. */
export function isCacheEntryLive(entry: Pick<CacheEntry, 'expiresAt'>, now: Date): boolean {
  return Date.parse(entry.expiresAt) > now.getTime();
}
