import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import type { Store } from '../ports/store.js';
import { BERTH_LABELS } from '../runtime/labels.js';

/**
 * Garbage collection of Berth's images: cache entries that expired (or whose environment is
 * gone) are dropped from the store and their images removed; cache images no entry records (a
 * build cut short between commit and publish) are removed once older than a grace period; and
 * attempt snapshots are removed after their time (`berth.expires-at`). Cache build claims whose
 * lease ran out more than the grace period ago (their builder died, nobody waited) are dropped.
 */
export class CacheCollector {
  constructor(
    private readonly store: Store,
    private readonly runtime: SandboxRuntime,
    private readonly graceMs = 10 * 60_000,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Drops every cache entry of an environment (`berth env cache reset`); returns how many. */
  async reset(environmentId: string): Promise<number> {
    const entries = await this.store.listCacheEntries(environmentId);
    await this.store.deleteCacheEntries(entries.map((e) => e.id));
    for (const entry of entries)
      await this.runtime.removeImage(entry.imageId).catch(() => undefined);
    return entries.length;
  }

  async collect(): Promise<{ cacheEntries: number; images: number; snapshots: number }> {
    const now = this.now();
    const entries = await this.store.listCacheEntries();
    const environments = new Set((await this.store.listEnvironments()).map((e) => e.id));
    const dead = entries.filter(
      (e) => Date.parse(e.expiresAt) <= now.getTime() || !environments.has(e.environmentId),
    );
    await this.store.deleteCacheEntries(dead.map((e) => e.id));
    // Claims of builders that died long ago (a live waiter would have taken them over).
    await this.store.deleteExpiredCacheBuilds(new Date(now.getTime() - this.graceMs).toISOString());
    const kept = new Set(entries.filter((e) => !dead.includes(e)).map((e) => e.imageId));

    let images = 0;
    for (const image of await this.runtime.listImages({ [BERTH_LABELS.kind]: 'cache' })) {
      const young = now.getTime() - Date.parse(image.createdAt) < this.graceMs;
      if (kept.has(image.id) || (young && !dead.some((e) => e.imageId === image.id))) continue;
      if (await this.remove(image.id)) images++;
    }
    let snapshots = 0;
    for (const image of await this.runtime.listImages({ [BERTH_LABELS.kind]: 'snapshot' })) {
      const expires = Date.parse(image.labels['berth.expires-at'] ?? '');
      if (Number.isFinite(expires) && expires <= now.getTime() && (await this.remove(image.id)))
        snapshots++;
    }
    return { cacheEntries: dead.length, images, snapshots };
  }

  private async remove(imageId: string): Promise<boolean> {
    try {
      await this.runtime.removeImage(imageId);
      return true;
    } catch {
      // In use by a running sandbox (an attempt started from it): next time.
      return false;
    }
  }
}
