/**
 * A cache entry being built: one row per (environment, cache key) in the store, held by one
 * builder (an orchestrator's attempt) under a lease the builder renews. Other orchestrators wait
 * for the entry while the lease is live; a lease that ran out (the builder died) may be taken over.
 */
export interface CacheBuildClaim {
  environmentId: string;
  key: string;
  /** Who builds: `<orchestrator lease owner>/<attempt id>`. */
  owner: string;
  claimedAt: string;
  expiresAt: string;
}

/** What a builder asks the store for (claim or renew). */
export interface CacheBuildRequest {
  environmentId: string;
  key: string;
  owner: string;
  now: string;
  leaseMs: number;
}
