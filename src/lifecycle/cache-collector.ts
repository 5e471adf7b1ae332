import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import type { Store } from '../ports/store.js';
import type { CacheEntry } from '../domain/cache/cache-entry.js';
import type {
  CacheImageHold,
  CacheResetImage,
  CacheResetReport,
} from '../domain/cache/cache-reset.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import { warmOwnerOf } from './warm-pool.js';

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

  /**
   * Drops every cache entry of an environment (`berth env cache reset`) and removes their images.
   * Warm sandboxes started from one go with it (nothing ran in them yet). An image the engine
   * keeps (a snapshot committed on it, a sandbox still running from it) is reported with what
   * holds it; `collect` removes it once those are gone (a snapshot at its `berth.expires-at`).
   */
  async reset(environmentId: string): Promise<CacheResetReport> {
    const entries = await this.store.listCacheEntries(environmentId);
    // Kept in the store (not in this process): the next build's log says so, whichever
    // orchestrator runs it and across restarts.
    await this.store.recordCacheReset(environmentId, this.now().toISOString());
    await this.store.deleteCacheEntries(entries.map((e) => e.id));
    const images: CacheResetImage[] = [];
    for (const entry of entries) {
      const fromIt = (image: string) => image === entry.image || image === entry.imageId;
      for (const sandbox of await this.runtime.list({}).catch(() => [])) {
        if (warmOwnerOf(sandbox.name) !== undefined && fromIt(sandbox.image))
          await this.runtime.remove(sandbox.id).catch(() => undefined);
      }
      if (await this.remove(entry.imageId)) {
        images.push({ image: entry.image, removed: true, heldBy: [] });
        continue;
      }
      images.push({ image: entry.image, removed: false, heldBy: await this.holders(entry) });
    }
    return { removed: entries.length, images };
  }

  /** What keeps a cache image: snapshots made on it (by their `berth.cache`) and its sandboxes. */
  private async holders(entry: CacheEntry): Promise<CacheImageHold[]> {
    const held: CacheImageHold[] = [];
    const snapshots = await this.runtime.listImages({ [BERTH_LABELS.kind]: 'snapshot' });
    const parentOf = new Map(snapshots.map((i) => [i.id, i.parentId]));
    /** Committed on the entry's image, or on a snapshot that was (a follow-up's). */
    const onEntry = (id: string | undefined): boolean => {
      for (let at = id, steps = 0; at !== undefined && steps < 1000; steps++) {
        if (at === entry.imageId) return true;
        at = parentOf.get(at);
      }
      return false;
    };
    for (const image of snapshots) {
      // Where the runtime records no parent, the entry's key (a snapshot inherits `berth.cache`).
      const parentKnown = snapshots.some((i) => i.parentId !== undefined);
      if (parentKnown ? !onEntry(image.parentId) : image.labels[BERTH_LABELS.cache] !== entry.key)
        continue;
      held.push({
        kind: 'snapshot',
        name: image.tags[0] ?? image.id,
        attempt: image.labels[BERTH_LABELS.attempt] ?? null,
        expiresAt: image.labels['berth.expires-at'] ?? null,
      });
    }
    for (const sandbox of await this.runtime.list({})) {
      if (sandbox.image !== entry.image && sandbox.image !== entry.imageId) continue;
      const attempt = sandbox.labels[BERTH_LABELS.attempt];
      held.push({
        kind: 'sandbox',
        name: sandbox.name,
        attempt: attempt === undefined || attempt === '' ? null : attempt,
        expiresAt: null,
      });
    }
    return held;
  }

  /** Each entry's size beyond its base image (the layers its setup added); null when unknown. */
  async sizesBeyondBase(entries: readonly CacheEntry[]): Promise<Map<string, number | null>> {
    const bases = new Map<string, number | null>();
    const out = new Map<string, number | null>();
    for (const entry of entries) {
      const baseId = entry.parts.baseImage;
      if (!bases.has(baseId)) {
        const base = await this.runtime.inspectImage(baseId).catch(() => undefined);
        bases.set(baseId, base?.sizeBytes ?? null);
      }
      const base = bases.get(baseId) ?? null;
      out.set(entry.id, base === null ? null : Math.max(0, entry.sizeBytes - base));
    }
    return out;
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
