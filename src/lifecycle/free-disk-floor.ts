import { BerthError } from '../errors/berth-error.js';
import type { RuntimeStorage } from '../ports/sandbox-runtime.js';

const MIB = 1024 * 1024;

/**
 * Refuses to start work when the disk where the engine keeps its images and sandboxes is nearly
 * full (below `minFreeMb`, `BERTH_MIN_FREE_DISK_MB`, 2 GB by default): a cache build or an attempt
 * started there would fail half-way with the engine's "no space left on device", and could take
 * other tasks down with it. Checked before an attempt starts and before a cache entry is built.
 * Where the runtime cannot tell the free space (an engine on another machine), nothing is checked.
 */
export class FreeDiskFloor {
  constructor(
    private readonly storage: (() => Promise<RuntimeStorage>) | undefined,
    private readonly minFreeMb: number,
  ) {}

  /** Throws `disk_full` naming the free space and the floor; `what` is "start an attempt" etc. */
  async check(what: string): Promise<void> {
    if (this.storage === undefined || this.minFreeMb <= 0) return;
    let storage: RuntimeStorage;
    try {
      storage = await this.storage();
    } catch {
      // The engine cannot be asked: the next engine call reports that with its own error.
      return;
    }
    if (storage.freeBytes === undefined || storage.freeBytes >= this.minFreeMb * MIB) return;
    const freeMb = Math.floor(storage.freeBytes / MIB);
    throw new BerthError(
      'disk_full',
      `not enough free disk to ${what}: ${freeMb} MB free in ${storage.rootDir} (where the Docker engine keeps its data), below the floor of ${this.minFreeMb} MB (BERTH_MIN_FREE_DISK_MB)`,
      { freeMb, minFreeMb: this.minFreeMb, rootDir: storage.rootDir },
    );
  }
}
