import type { SandboxResources, SandboxRuntime } from '../ports/sandbox-runtime.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import type { ForegroundActivity } from './foreground-activity.js';

/**
 * Sandboxes started ahead of time from a cache entry, so the next attempts that resume from it
 * skip the engine's container start (most of a cached start's time). Per (image, limits) the pool
 * keeps as many as the last burst of attempts took (attempts taking within `burstMs` of each
 * other, for example the N attempts of one best-of-N task), at most `maxPerKey`. They are made
 * in the background shortly after an attempt of the entry ended, once no attempt is still working
 * towards its result (so they do not compete with the attempts still running; bounded wait),
 * `makeConcurrency` at a time, with no network, removed after
 * `maxIdleMs` unused and when the pool is drained.
 *
 * Threat model: a warm sandbox has run nothing but Berth's own `true` (to open the exec channel);
 * it is handed to exactly one attempt and never returned to the pool, so no state passes from
 * one attempt to another. A warm sandbox is named `berth-warm-<owner>-<random>` (the scheduler's
 * lease owner): a recovery pass removes those whose owner holds no live lease (a dead
 * orchestrator's). The owner is in the name, not a label, because Docker copies a container's
 * labels into every image committed from it: a snapshot of an attempt that ran in a warm sandbox
 * would carry the owner and be reaped with the pool once that orchestrator is gone.
 */

/** The name prefix (after `berth-`) of the warm sandboxes of `owner`. */
export function warmNamePrefix(owner: string): string {
  return `warm-${owner}`;
}

/** The owner of a warm sandbox, from its name; undefined when the sandbox is not a warm one. */
export function warmOwnerOf(sandboxName: string | undefined): string | undefined {
  return /^\/?berth-warm-(.+)-[0-9a-f]{12}$/.exec(sandboxName ?? '')?.[1];
}

export interface WarmSpec {
  image: string;
  resources: SandboxResources;
  workdir: string;
}

interface Idle {
  sandboxId: string;
  since: number;
  timer: NodeJS.Timeout;
}

interface Demand {
  /** The current burst of takes: when it began and how many it had. */
  burstStart: number;
  burstCount: number;
  /** How many to keep ready: the largest recent burst. */
  target: number;
  lastTake: number;
}

export interface WarmPoolOptions {
  /** Unused warm sandboxes are removed after this long (10 minutes). */
  maxIdleMs?: number;
  /** The most kept ready per (image, limits) (8; the orchestrator passes its concurrency). */
  maxPerKey?: number;
  /** Takes this close to the first of a burst count as one burst (5 s). */
  burstMs?: number;
  /** The top-up starts this long after the last `fill` call (300 ms). */
  fillDelayMs?: number;
  /** Sandboxes started at once while topping up (2). */
  makeConcurrency?: number;
  /** A top-up first waits (at most `quietWaitMs`, 10 s) until no attempt is working towards its result. */
  foreground?: ForegroundActivity;
  quietWaitMs?: number;
}

export class WarmPool {
  private readonly idle = new Map<string, Idle[]>();
  private readonly filling = new Map<string, Promise<void>>();
  private readonly scheduled = new Map<string, NodeJS.Timeout>();
  private readonly demand = new Map<string, Demand>();
  private readonly maxIdleMs: number;
  private readonly maxPerKey: number;
  private readonly burstMs: number;
  private readonly fillDelayMs: number;
  private readonly makeConcurrency: number;
  private readonly foreground: ForegroundActivity | undefined;
  private readonly quietWaitMs: number;
  private draining = false;

  constructor(
    private readonly runtime: SandboxRuntime,
    private readonly owner: string,
    options: WarmPoolOptions | number = {},
  ) {
    const o = typeof options === 'number' ? { maxIdleMs: options } : options;
    this.maxIdleMs = o.maxIdleMs ?? 10 * 60_000;
    this.maxPerKey = Math.max(1, o.maxPerKey ?? 8);
    this.burstMs = o.burstMs ?? 5_000;
    this.fillDelayMs = o.fillDelayMs ?? 300;
    this.makeConcurrency = Math.max(1, o.makeConcurrency ?? 2);
    this.foreground = o.foreground;
    this.quietWaitMs = o.quietWaitMs ?? 10_000;
  }

  private keyOf(spec: WarmSpec): string {
    return JSON.stringify([spec.image, spec.resources, spec.workdir]);
  }

  /** A started sandbox for `spec`, or undefined. The caller owns (and removes) it from now on. */
  take(spec: WarmSpec): string | undefined {
    const key = this.keyOf(spec);
    this.recordDemand(key);
    const list = this.idle.get(key);
    const idle = list?.shift();
    if (list !== undefined && list.length === 0) this.idle.delete(key);
    if (idle === undefined) return undefined;
    clearTimeout(idle.timer);
    return idle.sandboxId;
  }

  /** How many sandboxes are ready, for every cache entry together (for tests and logs). */
  get readyTotal(): number {
    let total = 0;
    for (const list of this.idle.values()) total += list.length;
    return total;
  }

  /** How many sandboxes are ready for `spec` (for tests and logs). */
  ready(spec: WarmSpec): number {
    return this.idle.get(this.keyOf(spec))?.length ?? 0;
  }

  /**
   * Tops the pool for `spec` up to the recent demand, in the background, `fillDelayMs` after the
   * last call (an attempt of the entry ended; its siblings end about then too).
   */
  fill(spec: WarmSpec): void {
    if (this.draining) return;
    const key = this.keyOf(spec);
    clearTimeout(this.scheduled.get(key));
    const timer = setTimeout(() => {
      this.scheduled.delete(key);
      this.topUp(key, spec);
    }, this.fillDelayMs);
    timer.unref();
    this.scheduled.set(key, timer);
  }

  private recordDemand(key: string): void {
    const now = Date.now();
    const d = this.demand.get(key);
    if (d === undefined || now - d.lastTake > this.maxIdleMs) {
      this.demand.set(key, { burstStart: now, burstCount: 1, target: 1, lastTake: now });
      return;
    }
    if (now - d.burstStart <= this.burstMs) d.burstCount++;
    else {
      d.burstStart = now;
      d.burstCount = 1;
    }
    d.target = Math.max(d.target, d.burstCount);
    d.lastTake = now;
  }

  private topUp(key: string, spec: WarmSpec): void {
    if (this.draining || this.filling.has(key)) return;
    const target = Math.min(this.maxPerKey, this.demand.get(key)?.target ?? 1);
    const missing = target - (this.idle.get(key)?.length ?? 0);
    if (missing <= 0) return;
    const making = (async () => {
      await this.foreground?.quiet(this.quietWaitMs);
      let left = missing;
      const worker = async () => {
        while (left > 0 && !this.draining) {
          left--;
          await this.make(key, spec).catch(() => undefined);
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(this.makeConcurrency, missing) }, () => worker()),
      );
    })().finally(() => this.filling.delete(key));
    this.filling.set(key, making);
  }

  private async make(key: string, spec: WarmSpec): Promise<void> {
    const sandbox = await this.runtime.create({
      image: spec.image,
      // Made before its attempt is known: the task and attempt are blank, not the cache
      // builder's that Docker would copy from the cache image (a recovery of that attempt
      // removes its sandboxes by `berth.attempt`; it must not find the warm ones).
      labels: {
        [BERTH_LABELS.kind]: 'sandbox',
        [BERTH_LABELS.task]: '',
        [BERTH_LABELS.attempt]: '',
      },
      namePrefix: warmNamePrefix(this.owner),
      resources: spec.resources,
      hostname: 'berth',
      workdir: spec.workdir,
    });
    try {
      await this.runtime.start(sandbox.id);
      await this.runtime.exec(sandbox.id, { argv: ['true'], timeoutMs: 30_000 });
    } catch (error) {
      await this.runtime.remove(sandbox.id).catch(() => undefined);
      throw error;
    }
    if (this.draining) {
      await this.runtime.remove(sandbox.id).catch(() => undefined);
      return;
    }
    const timer = setTimeout(() => {
      const list = this.idle.get(key);
      const at = list?.findIndex((i) => i.sandboxId === sandbox.id) ?? -1;
      if (list === undefined || at < 0) return;
      list.splice(at, 1);
      if (list.length === 0) this.idle.delete(key);
      void this.runtime.remove(sandbox.id).catch(() => undefined);
    }, this.maxIdleMs);
    timer.unref();
    const list = this.idle.get(key) ?? [];
    list.push({ sandboxId: sandbox.id, since: Date.now(), timer });
    this.idle.set(key, list);
  }

  /** Removes every idle sandbox and stops making new ones. */
  async drain(): Promise<void> {
    this.draining = true;
    for (const timer of this.scheduled.values()) clearTimeout(timer);
    this.scheduled.clear();
    await Promise.all([...this.filling.values()]);
    const idle = [...this.idle.values()].flat();
    this.idle.clear();
    for (const entry of idle) {
      clearTimeout(entry.timer);
      await this.runtime.remove(entry.sandboxId).catch(() => undefined);
    }
  }
}
