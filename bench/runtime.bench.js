/* global process, console, performance */
// Sandbox runtime benchmark: DockerRuntime against the docker CLI / raw Engine API in the same run.
//  1. create + start a sandbox vs `docker run -d IMAGE sleep infinity` (same image)
//  2. exec round trip of `true`: exec agent, Engine-API exec, `docker exec` CLI
//  3. commit of a sandbox holding 200 MB of new files: time and image size
//  4. 8 sandboxes from one image, each writing 10 MB: disk used beyond the image
//
// Run: npx tsc -b && node bench/runtime.bench.js [--quick] [--image REF]
// Needs the minimal image (`berth image build minimal`; --image or BERTH_TEST_IMAGE names another,
// see bench-support.js). Prints a Markdown table for docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { DockerRuntime } from '../dist/adapters/runtime/docker/docker-runtime.js';
import { benchImage } from './bench-support.js';

const QUICK = process.argv.includes('--quick');
const IMAGE = benchImage();
const CREATE_RUNS = QUICK ? 4 : 12;
const EXEC_RUNS = QUICK ? 200 : 1000;
const ENGINE_EXEC_RUNS = QUICK ? 50 : 200;
const CLI_EXEC_RUNS = QUICK ? 10 : 40;
const RESOURCES = { cpus: 1, memoryMb: 512, pids: 256 };
const instance = `bench-${randomBytes(3).toString('hex')}`;
const runtime = new DockerRuntime({ instance });
const engineRuntime = new DockerRuntime({ instance, execChannel: 'engine' });
const docker = new Docker({ socketPath: '/var/run/docker.sock', version: 'v1.41' });

const made = [];
const cliMade = [];

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const ms = (v) => `${v.toFixed(1)} ms`;
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function timed(fn) {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function sandbox() {
  const info = await runtime.create({
    image: IMAGE,
    labels: { 'berth.task': 'bench' },
    resources: RESOURCES,
  });
  made.push(info.id);
  await runtime.start(info.id);
  return info.id;
}

async function main() {
  if (!(await runtime.imageExists(IMAGE))) {
    console.error(
      `${IMAGE} is missing: run \`berth image build minimal\` first (or pass --image REF)`,
    );
    process.exit(1);
  }
  const rows = [];
  const loadBefore = os.loadavg()[0];

  // 1. create + start, alternating with the CLI so both see the same machine load.
  const berthCreate = [];
  const cliRun = [];
  for (let i = 0; i < CREATE_RUNS + 1; i++) {
    const b = await timed(async () => {
      await sandbox();
    });
    const c = await timed(async () => {
      const id = execFileSync(
        'docker',
        ['run', '-d', '--network', 'none', IMAGE, 'sleep', 'infinity'],
        {
          encoding: 'utf8',
        },
      ).trim();
      cliMade.push(id);
    });
    if (i > 0) {
      berthCreate.push(b);
      cliRun.push(c);
    }
  }
  const createRatio = percentile(berthCreate, 50) / percentile(cliRun, 50);
  rows.push([
    'create + start a sandbox (p50)',
    ms(percentile(berthCreate, 50)),
    `\`docker run -d\` ${ms(percentile(cliRun, 50))}`,
    `${createRatio.toFixed(2)}× (goal ≤ 1.2×)`,
  ]);

  // 2. exec round trip of `true`.
  const id = await sandbox();
  for (let i = 0; i < 50; i++) await runtime.exec(id, { argv: ['true'] });
  const agent = [];
  for (let i = 0; i < EXEC_RUNS; i++)
    agent.push(await timed(() => runtime.exec(id, { argv: ['true'] })));
  const engine = [];
  for (let i = 0; i < ENGINE_EXEC_RUNS; i++)
    engine.push(await timed(() => engineRuntime.exec(id, { argv: ['true'] })));
  const cli = [];
  for (let i = 0; i < CLI_EXEC_RUNS; i++) {
    cli.push(await timed(async () => execFileSync('docker', ['exec', id, 'true'])));
  }
  rows.push([
    'exec `true`, exec agent (p50 / p90 / p99)',
    `${ms(percentile(agent, 50))} / ${ms(percentile(agent, 90))} / ${ms(percentile(agent, 99))}`,
    `\`docker exec\` CLI ${ms(percentile(cli, 50))} / ${ms(percentile(cli, 99))}`,
    'goal p50 ≤ 15, p99 ≤ 40 ms',
  ]);
  rows.push([
    'exec `true`, one Engine-API exec per command (p50 / p99; fallback path)',
    `${ms(percentile(engine, 50))} / ${ms(percentile(engine, 99))}`,
    '',
    '',
  ]);

  // 3. commit a sandbox holding 200 MB of new (incompressible) files.
  const fat = await sandbox();
  const write = await runtime.exec(fat, {
    script:
      'mkdir -p /work/blob && for i in $(seq 1 200); do head -c 1048576 /dev/urandom > /work/blob/f$i; done && du -sm /work/blob',
  });
  if (write.exitCode !== 0) throw new Error(write.output);
  const base = await runtime.inspectImage(IMAGE);
  let committed;
  const commitMs = await timed(async () => {
    committed = await runtime.commit(fat, {
      repository: `berth-bench-${instance}`,
      tag: 'fat',
      labels: {},
    });
  });
  rows.push([
    'commit a sandbox with 200 MB of new files',
    ms(commitMs),
    `image ${mb(committed.sizeBytes)} (base ${mb(base.sizeBytes)}, +${mb(committed.sizeBytes - base.sizeBytes)})`,
    'report',
  ]);
  await runtime.remove(fat);
  await runtime.removeImage(committed.id);

  // 4. 8 sandboxes from one image, each writing 10 MB.
  const eight = [];
  for (let i = 0; i < 8; i++) eight.push(await sandbox());
  for (const sid of eight) {
    const r = await runtime.exec(sid, { script: 'head -c 10485760 /dev/urandom > /tmp/own.bin' });
    if (r.exitCode !== 0) throw new Error(r.output);
  }
  const sizes = await docker.listContainers({ all: true, size: true, filters: { id: eight } });
  const rw = sizes.map((c) => c.SizeRw ?? 0);
  const total = rw.reduce((a, b) => a + b, 0);
  rows.push([
    '8 sandboxes from one image, each writing 10 MB: disk beyond the image',
    `${mb(total)} in total (${mb(Math.min(...rw))}–${mb(Math.max(...rw))} each)`,
    `image ${mb(base.sizeBytes)} shared, not copied`,
    'only what each wrote',
  ]);

  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  const info = await runtime.info();
  console.log(`\n### Sandbox runtime\n`);
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length}-core Debian 12 VM (${cpu}), Docker ${info.version} (API ${info.apiVersion}), overlay2, cgroup v1; image ${IMAGE}; runs: create ${CREATE_RUNS}, exec ${EXEC_RUNS} (agent) / ${ENGINE_EXEC_RUNS} (Engine API) / ${CLI_EXEC_RUNS} (CLI); load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0].toFixed(1)} after.\n`,
  );
  console.log('| measure | Berth | baseline (same run) | goal |');
  console.log('| --- | --- | --- | --- |');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

try {
  await main();
} finally {
  for (const id of made) await runtime.remove(id).catch(() => undefined);
  for (const id of cliMade) {
    try {
      execFileSync('docker', ['rm', '-f', id], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}
