import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { resourceLiveness } from '../../src/lifecycle/resource-liveness.js';
import { warmNamePrefix } from '../../src/lifecycle/warm-pool.js';
import { Reaper } from '../../src/runtime/reaper.js';
import { testImage } from './runtime-test-image.js';

/**
 * Issue 20 item 13: a warm sandbox that died with the Docker engine is removed by the running
 * server's reaper (its owner is alive, so it used to count as live until the next start).
 */

const runtime = new DockerRuntime({ instance: `deadwarm-${randomBytes(4).toString('hex')}` });
const dir = mkdtempSync(join(tmpdir(), 'berth-deadwarm-'));

afterAll(async () => {
  for (const sandbox of await runtime.list({})) await runtime.remove(sandbox.id);
  rmSync(dir, { recursive: true, force: true });
});

describe('the reaper of a running server (docker)', () => {
  it('removes its own warm sandboxes that died, and keeps the running ones', async () => {
    const store = SqliteStore.open(dir);
    await store.migrate();
    try {
      const image = await testImage();
      const make = async () => {
        const sandbox = await runtime.create({
          image,
          labels: { 'berth.task': '', 'berth.attempt': '' },
          namePrefix: warmNamePrefix('orch-me'),
          resources: { cpus: 1, memoryMb: 128, pids: 64 },
        });
        await runtime.start(sandbox.id);
        return sandbox.id;
      };
      const alive = await make();
      const died = await make();
      // What an engine restart does to it: the container stops.
      await runtime.stop(died, 1_000);
      const report = await new Reaper({
        runtime,
        isLive: resourceLiveness(store, { owner: 'orch-me' }),
      }).reapOnce();
      expect(report.sandboxes).toEqual([died]);
      expect((await runtime.list({})).map((s) => s.id)).toEqual([alive]);
    } finally {
      await store.close();
    }
  });
});
