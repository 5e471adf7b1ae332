/** What `berth env cache reset` did with each cache image (see CacheCollector.reset). */

/** Something that keeps a reset cache image on the engine. */
export interface CacheImageHold {
  kind: 'snapshot' | 'sandbox';
  /** The snapshot's image name, or the sandbox's name. */
  name: string;
  /** The attempt it belongs to, when known. */
  attempt: string | null;
  /** A snapshot's `berth.expires-at`: when it (and so the hold) goes. */
  expiresAt: string | null;
}

export interface CacheResetImage {
  image: string;
  removed: boolean;
  heldBy: CacheImageHold[];
}

export interface CacheResetReport {
  removed: number;
  images: CacheResetImage[];
}
