/**
 * One build at a time per (environment, cache key) in this orchestrator: the first attempt that
 * needs a missing cache entry builds it, the others wait for that build and reuse its result
 * (DESIGN §2: "concurrent tasks of the same environment wait for one build, never build twice").
 */
export class CacheBuildLock {
  private readonly inflight = new Map<string, Promise<unknown>>();

  /** Whether a build for `key` is running now. */
  isBuilding(key: string): boolean {
    return this.inflight.has(key);
  }

  /**
   * Runs `build` unless a build for `key` is running, in which case it waits for that one.
   * `waited` says which happened; a failed build rejects every waiter with its error. A waiter
   * whose `signal` aborts stops waiting at once (rejects with the signal's reason); the build it
   * waited for goes on for its own attempt.
   */
  async once<T>(
    key: string,
    signal: AbortSignal | undefined,
    build: () => Promise<T>,
  ): Promise<{ value: T; waited: boolean }> {
    const running = this.inflight.get(key) as Promise<T> | undefined;
    if (running !== undefined) return { value: await untilAborted(running, signal), waited: true };
    const promise = build();
    this.inflight.set(key, promise);
    try {
      return { value: await promise, waited: false };
    } finally {
      this.inflight.delete(key);
    }
  }
}

/** `promise`, or the signal's reason as soon as it aborts (the promise itself runs on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
