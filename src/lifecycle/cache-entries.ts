import type { CacheBuildClaim, CacheBuildRequest } from '../domain/cache/cache-build-claim.js';
import type { CacheEntry } from '../domain/cache/cache-entry.js';

/**
 * Where cache entries are recorded (the Store implements these methods). An entry is recorded only
 * after its image was committed, so an entry found here is always complete.
 */
export interface CacheEntries {
  /** The newest entry of the environment with this key that is still live at `now`. */
  findLiveCacheEntry(
    environmentId: string,
    key: string,
    now: string,
  ): Promise<CacheEntry | undefined>;
  /** The newest entry of the environment whatever its key or age (to explain a rebuild). */
  latestCacheEntry(environmentId: string): Promise<CacheEntry | undefined>;
  publishCacheEntry(entry: CacheEntry): Promise<void>;
  /** Who builds a missing entry, shared by every orchestrator on the store (see CacheBuildLease). */
  claimCacheBuild(request: CacheBuildRequest): Promise<boolean>;
  renewCacheBuild(request: CacheBuildRequest): Promise<boolean>;
  releaseCacheBuild(environmentId: string, key: string, owner: string): Promise<void>;
  getCacheBuild(environmentId: string, key: string): Promise<CacheBuildClaim | undefined>;
}
