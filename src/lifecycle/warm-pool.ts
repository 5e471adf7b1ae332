import type { SandboxResources, SandboxRuntime } from '../ports/sandbox-runtime.js';
import { BERTH_LABELS } from '../runtime/labels.js';

/**
 * Sandboxes started ahead of time from a cache entry, so the next attempt that resumes from it
 * skips the engine's container start (most of a cached start's time). One per (image, limits),
 * made in the background after an attempt used the entry, with no network, removed after
 * `maxIdleMs` unused and when the pool is drained.
 *
 * Threat model: a warm sandbox has run nothing but Berth's own `true` (to open the exec channel);
 * it is handed to exactly one attempt and never returned to the pool, so no state passes from
 * one attempt to another. Warm sandboxes carry `berth.warm-owner` (the scheduler's lease owner):
 * a recovery pass removes those whose owner holds no live lease (a dead orchestrator's).
 */

export const WARM_OWNER_LABEL = 'berth.warm-owner';

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

export class WarmPool {
  private readonly idle = new Map<string, Idle>();
  private readonly filling = new Map<string, Promise<void>>();
  private draining = false;

  constructor(
    private readonly runtime: SandboxRuntime,
    private readonly owner: string,
    private readonly maxIdleMs = 10 * 60_000,
  ) {}

  private keyOf(spec: WarmSpec): string {
    return JSON.stringify([spec.image, spec.resources, spec.workdir]);
  }

  /** A started sandbox for `spec`, or undefined. The caller owns (and removes) it from now on. */
  take(spec: WarmSpec): string | undefined {
    const key = this.keyOf(spec);
    const idle = this.idle.get(key);
    if (idle === undefined) return undefined;
    this.idle.delete(key);
    clearTimeout(idle.timer);
    return idle.sandboxId;
  }

  /** Starts one sandbox for `spec` in the background unless one is ready or being made. */
  fill(spec: WarmSpec): void {
    const key = this.keyOf(spec);
    if (this.draining || this.idle.has(key) || this.filling.has(key)) return;
    const making = this.make(key, spec)
      .catch(() => undefined)
      .finally(() => this.filling.delete(key));
    this.filling.set(key, making);
  }

  private async make(key: string, spec: WarmSpec): Promise<void> {
    const sandbox = await this.runtime.create({
      image: spec.image,
      labels: { [BERTH_LABELS.kind]: 'sandbox', [WARM_OWNER_LABEL]: this.owner },
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
      if (this.idle.get(key)?.sandboxId !== sandbox.id) return;
      this.idle.delete(key);
      void this.runtime.remove(sandbox.id).catch(() => undefined);
    }, this.maxIdleMs);
    timer.unref();
    this.idle.set(key, { sandboxId: sandbox.id, since: Date.now(), timer });
  }

  /** Removes every idle sandbox and stops making new ones. */
  async drain(): Promise<void> {
    this.draining = true;
    await Promise.all([...this.filling.values()]);
    const idle = [...this.idle.values()];
    this.idle.clear();
    for (const entry of idle) {
      clearTimeout(entry.timer);
      await this.runtime.remove(entry.sandboxId).catch(() => undefined);
    }
  }
}
