import { BERTH_LABELS } from './labels.js';
import type { SandboxInfo, SandboxRuntime } from '../ports/sandbox-runtime.js';

/**
 * Removes what Berth left behind: sandboxes, networks and snapshot/cache images carrying
 * `berth.managed=true` and this instance's label that belong to no live attempt or cache entry.
 * Works through the SandboxRuntime port, so it serves every adapter. The caller decides what is
 * live from the labels (`berth.attempt`, `berth.task`, `berth.cache`, `berth.kind`); a resource
 * is only ever removed when `isLive` says false for it, so an attempt must be recorded as live
 * before its sandbox is created.
 *
 * Base images (`berth.kind=base|language`) are never reaped: they belong to no attempt.
 */
export interface ReaperLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ReaperOptions {
  runtime: SandboxRuntime;
  /** `name` and `state`: the sandbox's, for sandboxes. */
  isLive: (
    labels: Record<string, string>,
    name?: string,
    state?: SandboxInfo['state'],
  ) => Promise<boolean>;
  /** Default: 5 minutes. */
  intervalMs?: number;
  logger?: ReaperLogger;
}

export interface ReapReport {
  sandboxes: string[];
  networks: string[];
  images: string[];
  /** Resources that could not be removed this pass (tried again next pass). */
  failures: { kind: 'sandbox' | 'network' | 'image'; id: string; message: string }[];
}

const REAPED_IMAGE_KINDS = new Set(['cache', 'snapshot']);

export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ReapReport> | undefined;
  private readonly intervalMs: number;

  constructor(private readonly options: ReaperOptions) {
    this.intervalMs = options.intervalMs ?? 5 * 60_000;
  }

  /** Reaps once now (start-up), then on the interval until `stop()`. */
  async start(): Promise<ReapReport> {
    // The interval runs even when the first pass fails (the engine may be back later).
    this.timer ??= setInterval(() => {
      this.reapOnce().catch((error: unknown) => {
        this.options.logger?.warn({ err: error }, 'reaper pass failed');
      });
    }, this.intervalMs);
    this.timer.unref();
    return this.reapOnce();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One pass; concurrent calls share the pass in progress. */
  reapOnce(signal?: AbortSignal): Promise<ReapReport> {
    this.running ??= this.pass(signal).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(signal?: AbortSignal): Promise<ReapReport> {
    const { runtime, isLive } = this.options;
    const report: ReapReport = { sandboxes: [], networks: [], images: [], failures: [] };
    const attempt = async (
      kind: 'sandbox' | 'network' | 'image',
      id: string,
      remove: () => Promise<void>,
    ) => {
      signal?.throwIfAborted();
      try {
        await remove();
        (kind === 'sandbox'
          ? report.sandboxes
          : kind === 'network'
            ? report.networks
            : report.images
        ).push(id);
      } catch (error) {
        report.failures.push({
          kind,
          id,
          message: error instanceof Error ? error.message : String(error),
        });
      }
    };
    // Sandboxes first: networks and images in use by them cannot go before they do.
    for (const sandbox of await runtime.list({})) {
      if (!(await isLive(sandbox.labels, sandbox.name, sandbox.state)))
        await attempt('sandbox', sandbox.id, () => runtime.remove(sandbox.id));
    }
    for (const network of await runtime.listNetworks({})) {
      if (!(await isLive(network.labels))) {
        await attempt('network', network.name, () => runtime.removeNetwork(network.id));
      }
    }
    // Snapshots are children of cache images and the engine refuses a parent while a child
    // exists: newest first, and what the engine refused once is tried again after the rest.
    const images = (await runtime.listImages({})).sort((a, b) =>
      b.createdAt.localeCompare(a.createdAt),
    );
    const deferred: typeof images = [];
    for (const image of images) {
      const kind = image.labels[BERTH_LABELS.kind];
      if (kind === undefined || !REAPED_IMAGE_KINDS.has(kind)) continue;
      if (await isLive(image.labels)) continue;
      try {
        await runtime.removeImage(image.id);
        report.images.push(image.id);
      } catch {
        deferred.push(image);
      }
    }
    for (const image of deferred) {
      await attempt('image', image.id, () => runtime.removeImage(image.id));
    }
    const removed = report.sandboxes.length + report.networks.length + report.images.length;
    if (removed > 0 || report.failures.length > 0) {
      this.options.logger?.info(
        {
          sandboxes: report.sandboxes.length,
          networks: report.networks.length,
          images: report.images.length,
          failures: report.failures,
        },
        'reaper removed leftovers',
      );
    }
    return report;
  }
}
