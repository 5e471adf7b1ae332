import type { CacheBuildClaim } from '../domain/cache/cache-build-claim.js';
import type { CacheEntry } from '../domain/cache/cache-entry.js';
import type { CacheEntries } from './cache-entries.js';

/**
 * The cross-orchestrator half of "build a missing cache entry once": the right to build lives in
 * the store (`cache_builds`, one row per environment and key), so every orchestrator on one
 * PostgreSQL database, or every process on one SQLite file, sees it. The builder holds a lease it
 * renews while it builds and drops when the entry is published or the build failed; the others
 * poll the store (backing off, abortable) until the entry is published, or until the claim is
 * gone or its lease ran out (the builder died), when one of them claims the build.
 *
 * In one orchestrator, CacheBuildLock runs in front of this, so its attempts wait for each other
 * in memory and only one of them polls the store.
 */

export interface CacheBuildLeaseOptions {
  store: CacheEntries;
  /** Lease length; renewed every third of it while the build runs. */
  leaseMs?: number;
  /** First and longest wait between two looks at the store. */
  pollMs?: { first: number; max: number };
  now?: () => Date;
}

/** A build this process holds: release it when the entry is published or the build failed. */
export interface HeldCacheBuild {
  /** The claim another builder held before this one took it over (its lease had run out). */
  tookOverFrom: CacheBuildClaim | undefined;
  /** True when a renewal found the claim taken by another owner. */
  readonly lost: boolean;
  release(): Promise<void>;
}

export type CacheBuildTurn = { entry: CacheEntry } | { held: HeldCacheBuild };

export interface AcquireBuild {
  environmentId: string;
  key: string;
  /** Unique per build: `<orchestrator owner>/<attempt id>`. */
  owner: string;
  signal: AbortSignal;
  /** Called once when another builder holds the claim and this one starts waiting. */
  onWait?: (claim: CacheBuildClaim) => void;
  /** Called when a renewal fails (the store is unreachable, or another owner took the build). */
  onRenewFailed?: (reason: string) => void;
}

export class CacheBuildLease {
  private readonly leaseMs: number;
  private readonly pollMs: { first: number; max: number };
  private readonly now: () => Date;

  constructor(private readonly options: CacheBuildLeaseOptions) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.pollMs = options.pollMs ?? { first: 200, max: 2_000 };
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Resolves with the live entry once one is published, or with the build when this caller got
   * it (then it must build, publish and release). Rejects when the signal aborts.
   */
  async acquire(request: AcquireBuild): Promise<CacheBuildTurn> {
    const { store } = this.options;
    const { environmentId, key, owner, signal } = request;
    let delay = this.pollMs.first;
    let waitedFor: CacheBuildClaim | undefined;
    for (;;) {
      signal.throwIfAborted();
      const live = await store.findLiveCacheEntry(environmentId, key, this.stamp());
      if (live !== undefined) return { entry: live };
      const before = await store.getCacheBuild(environmentId, key);
      if (
        await store.claimCacheBuild({
          environmentId,
          key,
          owner,
          now: this.stamp(),
          leaseMs: this.leaseMs,
        })
      ) {
        // The entry may have been published (and its claim dropped) between the two looks.
        const published = await store.findLiveCacheEntry(environmentId, key, this.stamp());
        if (published !== undefined) {
          await store.releaseCacheBuild(environmentId, key, owner);
          return { entry: published };
        }
        const takenFrom = before !== undefined && before.owner !== owner ? before : waitedFor;
        return { held: this.hold(request, takenFrom) };
      }
      if (waitedFor === undefined) {
        waitedFor = (await store.getCacheBuild(environmentId, key)) ?? before;
        if (waitedFor !== undefined) request.onWait?.(waitedFor);
      }
      await sleep(delay, signal);
      delay = Math.min(this.pollMs.max, Math.round(delay * 1.5));
    }
  }

  private hold(request: AcquireBuild, tookOverFrom: CacheBuildClaim | undefined): HeldCacheBuild {
    const { store } = this.options;
    const { environmentId, key, owner } = request;
    let lost = false;
    let renewing: Promise<void> = Promise.resolve();
    const timer = setInterval(
      () => {
        renewing = store
          .renewCacheBuild({ environmentId, key, owner, now: this.stamp(), leaseMs: this.leaseMs })
          .then((ok) => {
            if (!ok && !lost) {
              lost = true;
              request.onRenewFailed?.('another builder took the cache build over');
            }
          })
          .catch((error: unknown) => {
            request.onRenewFailed?.(error instanceof Error ? error.message : String(error));
          });
      },
      Math.max(100, Math.floor(this.leaseMs / 3)),
    );
    timer.unref();
    let released: Promise<void> | undefined;
    return {
      tookOverFrom,
      get lost() {
        return lost;
      },
      release: () => {
        released ??= (async () => {
          clearInterval(timer);
          await renewing;
          await store.releaseCacheBuild(environmentId, key, owner);
        })();
        return released;
      },
    };
  }

  private stamp(): string {
    return this.now().toISOString();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', aborted);
    };
    const aborted = () => {
      done();
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal.addEventListener('abort', aborted, { once: true });
  });
}
