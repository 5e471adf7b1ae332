/* global process, console, setTimeout, AbortController */
// Disk watchdog benchmark on the local Docker engine:
//  - the cost of one watchdog poll (`sandboxDiskUsage()`: one GET /containers/json?size=1 for all
//    running sandboxes) with 1, 4 and 8 running sandboxes, each fresh and then each having written
//    2000 small files (the engine walks every writable layer to answer);
//  - the overshoot: a sandbox with a 100 MB limit writing 400 MB in 4 MB chunks (a 50 ms pause
//    between them, and none), polled every 1 s and every 2 s: how much it had written when stopped.
//
// Run: npx tsc -b && node bench/disk-watchdog.bench.js [--image REF]
// Writes at most 8 × 2000 small files and 400 MB per overshoot run, removed at the end.
import { DockerRuntime } from '../dist/adapters/runtime/docker/docker-runtime.js';
import { DiskWatchdog } from '../dist/lifecycle/disk-watchdog.js';
import { benchImage } from './bench-support.js';

const IMAGE = benchImage();
const runtime = new DockerRuntime({ instance: `bench-disk-${process.pid}` });
const MB = 1024 * 1024;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

async function sandbox() {
  const s = await runtime.create({
    image: IMAGE,
    labels: {},
    resources: { cpus: 1, memoryMb: 256, pids: 256 },
  });
  await runtime.start(s.id);
  return s.id;
}

async function pollCost(rounds = 10) {
  const times = [];
  for (let i = 0; i < rounds; i++) {
    const t = process.hrtime.bigint();
    await runtime.sandboxDiskUsage();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return Math.round(median(times) * 10) / 10;
}

async function overshoot(intervalMs, pause) {
  const id = await sandbox();
  const watchdog = new DiskWatchdog({
    usage: () => runtime.sandboxDiskUsage(),
    intervalMs,
  });
  const controller = new AbortController();
  const stopped = new Promise((resolve) =>
    watchdog.watch(id, 100 * MB, (written) => {
      controller.abort();
      resolve(written);
    }),
  );
  const writer = runtime
    .exec(id, {
      script: `for i in $(seq 1 100); do head -c 4194304 /dev/zero > /tmp/blob-$i; ${pause ? 'sleep 0.05;' : ''} done`,
      signal: controller.signal,
      timeoutMs: 120_000,
    })
    .catch(() => undefined);
  const t0 = Date.now();
  const first = await Promise.race([stopped, writer.then(() => 'finished')]);
  const writerMs = Date.now() - t0;
  await writer;
  // A writer faster than one interval finishes before the first poll; the poll after still stops it.
  const written =
    first === 'finished'
      ? await Promise.race([
          stopped,
          new Promise((r) => setTimeout(() => r(undefined), 3 * intervalMs)),
        ])
      : first;
  await runtime.remove(id);
  return {
    stoppedAtMb: typeof written === 'number' ? Math.round(written / MB) : null,
    writerFinished: first === 'finished',
    writerMs,
  };
}

const results = { pollMs: {}, overshootMb: {} };
const ids = [];
try {
  for (const count of [1, 4, 8]) {
    while (ids.length < count) ids.push(await sandbox());
    results.pollMs[`${count} fresh`] = await pollCost();
  }
  for (const id of ids)
    await runtime.exec(id, {
      script: 'mkdir -p /tmp/many && cd /tmp/many && seq 1 2000 | xargs touch',
      timeoutMs: 60_000,
    });
  results.pollMs['8 × 2000 files'] = await pollCost();
} finally {
  for (const id of ids) await runtime.remove(id);
}
for (const intervalMs of [1000, 2000])
  for (const pause of [true, false])
    results.overshootMb[`${intervalMs} ms, ${pause ? '50 ms pause' : 'no pause'}`] =
      await overshoot(intervalMs, pause);
console.log(JSON.stringify(results, null, 2));
