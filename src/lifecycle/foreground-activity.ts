/**
 * Counts the attempts of this orchestrator that are still working towards their result, so that
 * background work (a snapshot commit after the result, a warm-pool top-up) can wait for a quiet
 * moment instead of taking the two cores from them: the N attempts of a best-of-N task finish at
 * different times, and the first ones' `docker commit`s and new warm sandboxes otherwise slow the
 * last ones down. A wait is bounded (`quiet(maxWaitMs)`), so steady load never starves it.
 */
export class ForegroundActivity {
  private active = 0;
  private waiters: Array<() => void> = [];

  /** One attempt started; the returned function (safe to call twice) says it has its result. */
  begin(): () => void {
    this.active++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.active--;
      if (this.active === 0) {
        const waiting = this.waiters;
        this.waiters = [];
        for (const wake of waiting) wake();
      }
    };
  }

  /** How many attempts are working towards their result now. */
  get running(): number {
    return this.active;
  }

  /** Resolves when no attempt is working towards its result, or after `maxWaitMs`. */
  quiet(maxWaitMs: number): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, maxWaitMs);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }
}
