/* global process, console, performance */
// Sandbox restart benchmark: what the restart after each setup or maintenance script costs
// (src/lifecycle/leftover-processes.ts: stop with no grace period, then start, through the
// runtime port; the next exec starts the exec agent anew). Measures, on a real engine:
//  restart      runtime.stop(id, 0) + runtime.start(id)
//  first exec   the next `true` through the exec channel (the agent is started again)
// with a sandbox that has a few leftover processes each round (a daemonised sleep), as after a
// setup script that left some.
//
// Run: npx tsc -b && node bench/sandbox-restart.bench.js [--rounds N] [--image REF]
// Needs the minimal image (`berth image build minimal`; see bench/bench-support.js).
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { DockerRuntime } from '../dist/adapters/runtime/docker/docker-runtime.js';
import { benchImage } from './bench-support.js';

const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 15;
const runtime = new DockerRuntime({ instance: `bench-restart-${randomBytes(3).toString('hex')}` });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const stats = (xs) => ({
  median: Math.round(median(xs)),
  min: Math.round(Math.min(...xs)),
  max: Math.round(Math.max(...xs)),
});

const info = await runtime.create({
  image: benchImage(),
  labels: { 'berth.task': 'bench-restart' },
  resources: { cpus: 1, memoryMb: 512, pids: 256 },
});
try {
  await runtime.start(info.id);
  const restart = [];
  const firstExec = [];
  for (let i = 0; i < ROUNDS; i++) {
    await runtime.exec(info.id, {
      script: 'for n in 1 2 3; do setsid sleep 600 </dev/null >/dev/null 2>&1 & done',
      timeoutMs: 10_000,
    });
    const t0 = performance.now();
    await runtime.stop(info.id, 0);
    await runtime.start(info.id);
    const t1 = performance.now();
    const ran = await runtime.exec(info.id, { argv: ['true'], timeoutMs: 10_000 });
    const t2 = performance.now();
    if (ran.exitCode !== 0) throw new Error('exec after restart failed');
    restart.push(t1 - t0);
    firstExec.push(t2 - t1);
  }
  const summary = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    load: os.loadavg().map((l) => l.toFixed(1)),
    rounds: ROUNDS,
    restartMs: stats(restart),
    firstExecMs: stats(firstExec),
    totalMs: stats(restart.map((r, i) => r + firstExec[i])),
  };
  console.log(JSON.stringify(summary, null, 2));
  console.log('\n| step | median | min | max |\n| --- | --- | --- | --- |');
  for (const [name, s] of [
    ['stop (no grace) + start', summary.restartMs],
    ['first exec after it', summary.firstExecMs],
    ['together', summary.totalMs],
  ])
    console.log(`| ${name} | ${s.median} ms | ${s.min} ms | ${s.max} ms |`);
} finally {
  await runtime.remove(info.id);
}
