import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DockerRuntime,
  KEPT_CAPABILITIES,
} from '../../src/adapters/runtime/docker/docker-runtime.js';
import { runtimeConformance } from './runtime-conformance.js';
import { testImage } from './runtime-test-image.js';

const instance = `test-${randomBytes(4).toString('hex')}`;

runtimeConformance('DockerRuntime (exec agent)', async () => ({
  runtime: new DockerRuntime({ instance }),
  image: await testImage(),
  makeRuntime: () => new DockerRuntime({ instance }),
}));

runtimeConformance(
  'DockerRuntime (one Engine-API exec per command)',
  async () => ({
    runtime: new DockerRuntime({ instance, execChannel: 'engine' }),
    image: await testImage(),
    makeRuntime: () => new DockerRuntime({ instance, execChannel: 'engine' }),
  }),
  // The bounded-output code is shared by both exec paths and the gigabyte case costs a minute of
  // both cores; it runs once, on the default (agent) path above.
  { skipHeavy: 'output bounding is shared with the agent path, which runs the gigabyte case' },
);

/**
 * A sandbox's memory, process and CPU limits from inside it: cgroup v2 (`memory.max`,
 * `pids.max`, `cpu.max` = "QUOTA PERIOD") or v1 (`memory.limit_in_bytes`, `pids.max`,
 * `cpu.cfs_quota_us` and `cpu.cfs_period_us`).
 */
async function cgroupLimits(
  runtime: DockerRuntime,
  id: string,
): Promise<{ memoryBytes: string; pids: string; cpuQuotaUs: number; cpuPeriodUs: number }> {
  const { stdout, exitCode, stderr } = await runtime.exec(id, {
    script: `set -e
cd /sys/fs/cgroup
if [ -f cgroup.controllers ]; then
  echo "memory $(cat memory.max)"; echo "pids $(cat pids.max)"; echo "cpu $(cat cpu.max)"
else
  echo "memory $(cat memory/memory.limit_in_bytes)"; echo "pids $(cat pids/pids.max)"
  echo "cpu $(cat cpu/cpu.cfs_quota_us) $(cat cpu/cpu.cfs_period_us)"
fi`,
  });
  expect(exitCode, stderr).toBe(0);
  const field = (name: string): string[] =>
    stdout
      .split('\n')
      .find((line) => line.startsWith(`${name} `))
      ?.split(' ')
      .slice(1) ?? [];
  const [quota, period] = field('cpu');
  return {
    memoryBytes: field('memory')[0] ?? '',
    pids: field('pids')[0] ?? '',
    cpuQuotaUs: Number(quota),
    cpuPeriodUs: Number(period),
  };
}

describe('DockerRuntime specifics', () => {
  it('keeps exactly the documented capabilities and the requested limits', async () => {
    const resources = { cpus: 0.5, memoryMb: 128, pids: 64 };
    const runtime = new DockerRuntime({ instance });
    const sandbox = await runtime.create({
      image: await testImage(),
      labels: { 'berth.task': 'caps' },
      resources,
    });
    try {
      await runtime.start(sandbox.id);
      const status = (await runtime.exec(sandbox.id, { argv: ['cat', '/proc/self/status'] }))
        .stdout;
      const bits: Record<string, number> = {
        CHOWN: 0,
        DAC_OVERRIDE: 1,
        FOWNER: 3,
        FSETID: 4,
        KILL: 5,
        SETGID: 6,
        SETUID: 7,
        NET_BIND_SERVICE: 10,
      };
      const expected = KEPT_CAPABILITIES.reduce(
        (mask, cap) => mask | (1n << BigInt(bits[cap] ?? 63)),
        0n,
      );
      const capEff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(status)?.[1] ?? '0'}`);
      expect(capEff.toString(16)).toBe(expected.toString(16));
      // The limits as the kernel holds them, read from the sandbox's own cgroup (v1 or v2).
      const limits = await cgroupLimits(runtime, sandbox.id);
      expect(limits.memoryBytes).toBe(String(resources.memoryMb * 1024 * 1024));
      expect(limits.pids).toBe(String(resources.pids));
      // NanoCpus becomes a CFS quota per period: 0.5 CPU = 50 ms of every 100 ms.
      expect(limits.cpuPeriodUs).toBeGreaterThan(0);
      expect(limits.cpuQuotaUs / limits.cpuPeriodUs).toBeCloseTo(resources.cpus, 5);
    } finally {
      await runtime.remove(sandbox.id);
    }
  });

  it('falls back to one Engine-API exec per command in an image without perl', async () => {
    const runtime = new DockerRuntime({ instance });
    const resources = { cpus: 1, memoryMb: 128, pids: 64 };
    const donor = await runtime.create({ image: await testImage(), labels: {}, resources });
    await runtime.start(donor.id);
    await runtime.exec(donor.id, { script: 'rm -f /usr/bin/perl /usr/bin/perl5*' });
    const image = await runtime.commit(donor.id, {
      repository: `berth-noperl-${instance}`,
      tag: 'test',
      labels: {},
    });
    await runtime.remove(donor.id);
    const sandbox = await runtime.create({ image: image.id, labels: {}, resources });
    try {
      await runtime.start(sandbox.id);
      const result = await runtime.exec(sandbox.id, {
        script: 'command -v perl || echo "no perl"; exit 3',
        env: { A: 'b' },
      });
      expect(result).toMatchObject({ exitCode: 3, stdout: 'no perl\n' });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 500);
      await expect(
        runtime.exec(sandbox.id, { script: 'sleep 123 & wait', signal: controller.signal }),
      ).rejects.toMatchObject({
        code: 'cancelled',
      });
      const left = await runtime.exec(sandbox.id, {
        script: 'cat /proc/[0-9]*/cmdline | tr "\\0" " "',
      });
      expect(left.stdout).not.toContain('sleep 123');
    } finally {
      await runtime.remove(sandbox.id);
      await runtime.removeImage(image.id);
    }
  });

  it('fails with runtime_unavailable when the engine socket does not exist', async () => {
    const runtime = new DockerRuntime({ instance, socketPath: '/nonexistent/docker.sock' });
    await expect(runtime.info()).rejects.toMatchObject({ code: 'runtime_unavailable' });
  });
});
