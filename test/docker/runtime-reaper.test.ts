import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { Reaper } from '../../src/runtime/reaper.js';
import { testImage } from './runtime-test-image.js';

const RESOURCES = { cpus: 0.5, memoryMb: 128, pids: 64 };

describe('Reaper over DockerRuntime', () => {
  it('after the orchestrator is gone, a new one reaps everything that is not live, and nothing else', async () => {
    const instance = `reaper-${randomBytes(4).toString('hex')}`;
    const image = await testImage();

    // "Orchestrator 1": makes sandboxes (one mid-exec), a network and a snapshot, then vanishes
    // without cleaning up.
    let first: DockerRuntime | undefined = new DockerRuntime({ instance });
    const leftover = await first.create({
      image,
      labels: { 'berth.attempt': 'att_dead' },
      resources: RESOURCES,
    });
    await first.start(leftover.id);
    const live = await first.create({
      image,
      labels: { 'berth.attempt': 'att_live' },
      resources: RESOURCES,
    });
    await first.start(live.id);
    const net = await first.createNetwork({
      name: `${instance}-net`,
      internal: true,
      labels: { 'berth.attempt': 'att_dead' },
    });
    await first.connect(leftover.id, net.name);
    const snapshot = await first.commit(leftover.id, {
      repository: `berth-reaper-test-${instance}`,
      tag: 'snap',
      labels: { 'berth.kind': 'snapshot', 'berth.attempt': 'att_dead' },
    });
    void first.exec(leftover.id, { script: 'sleep 600' }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    first = undefined; // eslint-disable-line no-useless-assignment -- the orchestrator object is dropped on purpose

    // Someone else's instance must be left alone.
    const otherInstance = new DockerRuntime({ instance: `${instance}-other` });
    const foreign = await otherInstance.create({
      image,
      labels: { 'berth.attempt': 'att_dead' },
      resources: RESOURCES,
    });

    try {
      // "Orchestrator 2" starts: its reaper runs at start-up.
      const second = new DockerRuntime({ instance });
      const seen: Record<string, string>[] = [];
      const reaper = new Reaper({
        runtime: second,
        isLive: (labels) => {
          seen.push(labels);
          return Promise.resolve(labels['berth.attempt'] === 'att_live');
        },
        intervalMs: 60_000,
      });
      const report = await reaper.start();
      await reaper.stop();

      expect(report.failures).toEqual([]);
      expect(report.sandboxes).toEqual([leftover.id]);
      expect(report.networks).toEqual([net.name]);
      expect(report.images).toEqual([snapshot.id]);
      expect(
        seen.every((l) => l['berth.instance'] === instance && l['berth.managed'] === 'true'),
      ).toBe(true);

      expect((await second.list({})).map((s) => s.id)).toEqual([live.id]);
      expect(await second.listNetworks({})).toEqual([]);
      expect(await second.listImages({ 'berth.kind': 'snapshot' })).toEqual([]);
      expect(await second.imageExists(snapshot.id)).toBe(false);
      expect((await otherInstance.list({})).map((s) => s.id)).toEqual([foreign.id]);

      // Once the live attempt ends, the next pass takes it too: nothing is left over.
      const after = await new Reaper({
        runtime: second,
        isLive: () => Promise.resolve(false),
      }).reapOnce();
      expect(after.sandboxes).toEqual([live.id]);
      expect(await second.list({})).toEqual([]);
    } finally {
      const cleanup = new DockerRuntime({ instance });
      await cleanup.remove(leftover.id);
      await cleanup.remove(live.id);
      await cleanup.removeNetwork(net.name);
      await cleanup.removeImage(snapshot.id);
      await otherInstance.remove(foreign.id);
    }
  });

  it('removes a cache image and the snapshot made on top of it in one pass', async () => {
    const instance = `reaper-${randomBytes(4).toString('hex')}`;
    const runtime = new DockerRuntime({ instance });
    const labels = { 'berth.attempt': 'att_gone' };
    const first = await runtime.create({ image: await testImage(), labels, resources: RESOURCES });
    const parent = await runtime.commit(first.id, {
      repository: `berth-reaper-test-${instance}`,
      tag: 'cache',
      labels: { ...labels, 'berth.kind': 'cache' },
    });
    const second = await runtime.create({ image: parent.id, labels, resources: RESOURCES });
    const child = await runtime.commit(second.id, {
      repository: `berth-reaper-test-${instance}`,
      tag: 'snap',
      labels: { ...labels, 'berth.kind': 'snapshot' },
    });
    try {
      const report = await new Reaper({ runtime, isLive: () => Promise.resolve(false) }).reapOnce();
      expect(report.failures).toEqual([]);
      expect([...report.images].sort()).toEqual([parent.id, child.id].sort());
      expect(await runtime.imageExists(parent.id)).toBe(false);
    } finally {
      for (const id of [first.id, second.id]) await runtime.remove(id).catch(() => undefined);
      for (const id of [child.id, parent.id]) await runtime.removeImage(id).catch(() => undefined);
    }
  });

  it('runs on its interval until stopped', async () => {
    const instance = `reaper-${randomBytes(4).toString('hex')}`;
    const runtime = new DockerRuntime({ instance });
    let passes = 0;
    const reaper = new Reaper({
      runtime,
      isLive: () => Promise.resolve(false),
      intervalMs: 200,
    });
    const original = reaper.reapOnce.bind(reaper);
    reaper.reapOnce = (signal?: AbortSignal) => {
      passes++;
      return original(signal);
    };
    await reaper.start();
    const sandbox = await runtime.create({
      image: await testImage(),
      labels: {},
      resources: RESOURCES,
    });
    await expect.poll(async () => (await runtime.list({})).length, { timeout: 10_000 }).toBe(0);
    await reaper.stop();
    const stoppedAt = passes;
    await new Promise((r) => setTimeout(r, 600));
    expect(passes).toBe(stoppedAt);
    await runtime.remove(sandbox.id);
  });
});
