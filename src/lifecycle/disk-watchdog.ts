import type { SandboxDiskUsage } from '../ports/sandbox-runtime.js';

/**
 * The per-attempt disk limit (`resources.diskMb`), enforced by polling: the engine's storage
 * driver here (overlay2 on ext4) has no per-container quota, so the orchestrator measures instead.
 * One watchdog per orchestrator; every few seconds, while at least one sandbox is watched, it asks
 * the runtime once for the writable-layer size of all running sandboxes (one Engine API call, not
 * one per attempt) and calls `onExceeded` for each watched sandbox past its limit, once.
 *
 * The limit is therefore not a hard wall: a sandbox may overshoot by what it writes in one poll
 * interval (plus the time the engine takes to measure). It stops runaway writers; it does not
 * reserve space. What counts is what the sandbox wrote beyond its image (SizeRw).
 *
 * The engine measures by walking every writable layer, so a poll costs more when sandboxes hold
 * many files (about 120 ms for 8 sandboxes of 2000 files each here). The next poll therefore waits
 * at least five times as long as the last one took: the watchdog keeps the engine busy at most a
 * sixth of the time, at the price of a longer interval (and a larger overshoot) under such load.
 */

export interface DiskWatchdogOptions {
  /** The runtime's one call for every sandbox (undefined where the runtime cannot measure). */
  usage: (() => Promise<SandboxDiskUsage[]>) | undefined;
  /** Between two polls (default 2 s). */
  intervalMs?: number;
  /** A failed measurement (the engine busy or gone): the next poll tries again. */
  onError?: (error: unknown) => void;
}

interface Watched {
  limitBytes: number;
  onExceeded: (writtenBytes: number) => void;
  fired: boolean;
}

export class DiskWatchdog {
  private readonly watched = new Map<string, Watched>();
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private lastPollMs = 0;
  /** How many times the runtime was asked (for tests and benchmarks). */
  polls = 0;

  constructor(private readonly options: DiskWatchdogOptions) {
    this.intervalMs = options.intervalMs ?? 2_000;
  }

  /** Whether this watchdog can measure at all (the runtime offers the call). */
  get enabled(): boolean {
    return this.options.usage !== undefined;
  }

  /**
   * Watches a sandbox until the returned function is called. `onExceeded` is called once, with
   * the bytes written, when the sandbox's writable layer passes `limitBytes`.
   */
  watch(
    sandboxId: string,
    limitBytes: number,
    onExceeded: (writtenBytes: number) => void,
  ): () => void {
    if (!this.enabled) return () => undefined;
    const entry: Watched = { limitBytes, onExceeded, fired: false };
    this.watched.set(sandboxId, entry);
    this.schedule();
    return () => {
      if (this.watched.get(sandboxId) === entry) this.watched.delete(sandboxId);
      if (this.watched.size === 0 && this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** One measurement of every watched sandbox now (the timer calls this; tests may too). */
  async poll(): Promise<void> {
    const usage = this.options.usage;
    if (usage === undefined || this.watched.size === 0) return;
    this.polls += 1;
    let sizes: SandboxDiskUsage[];
    const started = Date.now();
    try {
      sizes = await usage();
    } catch (error) {
      this.options.onError?.(error);
      return;
    } finally {
      this.lastPollMs = Date.now() - started;
    }
    for (const size of sizes) {
      const entry = this.watched.get(size.id);
      if (entry === undefined || entry.fired || size.writableBytes <= entry.limitBytes) continue;
      entry.fired = true;
      entry.onExceeded(size.writableBytes);
    }
  }

  private schedule(): void {
    if (this.timer !== undefined || this.polling !== undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.polling = this.poll().finally(() => {
          this.polling = undefined;
          if (this.watched.size > 0) this.schedule();
        });
      },
      Math.max(this.intervalMs, 5 * this.lastPollMs),
    );
    this.timer.unref();
  }
}
