import { describe, expect, it } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import { DiskWatchdog } from '../../src/lifecycle/disk-watchdog.js';
import { FreeDiskFloor } from '../../src/lifecycle/free-disk-floor.js';
import type { SandboxDiskUsage } from '../../src/ports/sandbox-runtime.js';

const MB = 1024 * 1024;

describe('DiskWatchdog', () => {
  it('measures every watched sandbox with one runtime call per poll and reports each overrun once', async () => {
    const sizes = new Map<string, number>([
      ['a', 10 * MB],
      ['b', 50 * MB],
      ['c', 5 * MB],
      ['not-watched', 900 * MB],
    ]);
    let calls = 0;
    const usage = (): Promise<SandboxDiskUsage[]> => {
      calls++;
      return Promise.resolve(
        [...sizes].map(([id, writableBytes]) => ({ id, labels: {}, writableBytes })),
      );
    };
    const watchdog = new DiskWatchdog({ usage, intervalMs: 60_000 });
    const exceeded: string[] = [];
    const stopA = watchdog.watch('a', 20 * MB, (n) => exceeded.push(`a:${n / MB}`));
    watchdog.watch('b', 100 * MB, (n) => exceeded.push(`b:${n / MB}`));
    watchdog.watch('c', 1 * MB, (n) => exceeded.push(`c:${n / MB}`));
    await watchdog.poll();
    expect(calls).toBe(1);
    expect(exceeded).toEqual(['c:5']);
    sizes.set('a', 30 * MB);
    await watchdog.poll();
    await watchdog.poll();
    expect(calls).toBe(3);
    // Three sandboxes, three polls, three calls; each overrun reported once.
    expect(exceeded).toEqual(['c:5', 'a:30']);
    stopA();
    sizes.set('b', 200 * MB);
    await watchdog.poll();
    expect(exceeded).toEqual(['c:5', 'a:30', 'b:200']);
  });

  it('polls on its own only while something is watched, and survives a failed measurement', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const watchdog = new DiskWatchdog({
      usage: () => {
        calls++;
        return calls === 1
          ? Promise.reject(new Error('engine busy'))
          : Promise.resolve([{ id: 's', labels: {}, writableBytes: 2 * MB }]);
      },
      intervalMs: 20,
      onError: (e) => errors.push(e),
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBe(0);
    const over = new Promise<number>((resolve) => watchdog.watch('s', MB, resolve));
    expect(await over).toBe(2 * MB);
    expect(errors).toHaveLength(1);
    expect(watchdog.polls).toBeGreaterThanOrEqual(2);
  });

  it('does nothing where the runtime cannot measure', async () => {
    const watchdog = new DiskWatchdog({ usage: undefined });
    expect(watchdog.enabled).toBe(false);
    watchdog.watch('s', 1, () => {
      throw new Error('never');
    })();
    await watchdog.poll();
    expect(watchdog.polls).toBe(0);
  });
});

describe('FreeDiskFloor', () => {
  const storage = (freeBytes: number | undefined) => () =>
    Promise.resolve({
      rootDir: '/var/lib/docker',
      ...(freeBytes !== undefined ? { freeBytes } : {}),
    });

  it('refuses below the floor with the free space, the directory and the setting', async () => {
    const error = await new FreeDiskFloor(storage(1536 * MB), 2048)
      .check('build a cache entry')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BerthError);
    expect((error as BerthError).code).toBe('disk_full');
    expect((error as BerthError).message).toBe(
      'not enough free disk to build a cache entry: 1536 MB free in /var/lib/docker (where the Docker engine keeps its data), below the floor of 2048 MB (BERTH_MIN_FREE_DISK_MB)',
    );
    expect((error as BerthError).details).toEqual({
      freeMb: 1536,
      minFreeMb: 2048,
      rootDir: '/var/lib/docker',
    });
  });

  it('lets work start above the floor, with the floor off, or when the space is unknown', async () => {
    await new FreeDiskFloor(storage(4096 * MB), 2048).check('start an attempt');
    await new FreeDiskFloor(storage(1 * MB), 0).check('start an attempt');
    await new FreeDiskFloor(storage(undefined), 2048).check('start an attempt');
    await new FreeDiskFloor(undefined, 2048).check('start an attempt');
    await new FreeDiskFloor(() => Promise.reject(new Error('engine down')), 2048).check('x');
  });
});
