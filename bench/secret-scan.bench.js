/* global process, console, performance, AbortController */
// Secret scan benchmark: what the scan after a setup script costs (src/lifecycle/secret-scan.ts:
// find walks every writable mount for entries changed since the script started, a perl program
// reads each one's name, link target, contents and extended attributes), against the walk alone
// (the same find, its output counted), on a sandbox where the "script" changed FILES files (an
// npm install's node_modules is of that order) and wrote the secret into one of them.
//
// Run: npx tsc -b && node bench/secret-scan.bench.js [--files N] [--rounds N] [--image REF]
// Needs the minimal image (`berth image build minimal`; see bench/bench-support.js).
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { DockerRuntime } from '../dist/adapters/runtime/docker/docker-runtime.js';
import { scanForSecrets } from '../dist/lifecycle/secret-scan.js';
import { SecretMasker } from '../dist/secrets/secret-masker.js';
import { benchImage } from './bench-support.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const FILES = arg('--files', 50_000);
const ROUNDS = arg('--rounds', 5);
const SECRET = 'bench-secret-value-7f3a9c';
const runtime = new DockerRuntime({ instance: `bench-scan-${randomBytes(3).toString('hex')}` });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const info = await runtime.create({
  image: benchImage(),
  labels: { 'berth.task': 'bench-scan' },
  resources: { cpus: 1, memoryMb: 1024, pids: 256 },
});
try {
  await runtime.start(info.id);
  const since = Date.now();
  const dirs = Math.ceil(FILES / 250);
  await runtime.exec(info.id, {
    script: `mkdir -p /workspace /root/nm && cd /root/nm && for d in $(seq 1 ${dirs}); do mkdir d$d; for f in $(seq 1 250); do echo "module $d $f" > d$d/f$f.js; done; done`,
    timeoutMs: 600_000,
  });
  const ctx = {
    runtime,
    sandboxId: info.id,
    workdir: '/workspace',
    emit: () => undefined,
    masker: new SecretMasker([SECRET]),
    signal: new AbortController().signal,
  };
  const walk = [];
  const scan = [];
  for (let i = 0; i < ROUNDS; i++) {
    await runtime.exec(info.id, { script: `echo "tok=${SECRET}" > /root/nm/d7/f7.js` });
    let t = performance.now();
    const listed = await runtime.exec(info.id, {
      script: `find / -xdev -newerct @${Math.floor(since / 1000) - 2} -printf '%y\\0%p\\0%l\\0' | wc -c`,
      timeoutMs: 300_000,
    });
    walk.push(performance.now() - t);
    if (listed.exitCode !== 0) throw new Error('find failed');
    t = performance.now();
    const found = await scanForSecrets(ctx, {
      since,
      secretValues: [SECRET],
      removeFiles: [],
      phase: 'setup',
    });
    scan.push(performance.now() - t);
    if (found.removed.length !== 1) throw new Error(`expected one removed file: ${found.removed}`);
  }
  const summary = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    load: os.loadavg().map((l) => l.toFixed(1)),
    files: FILES,
    rounds: ROUNDS,
    walkMs: Math.round(median(walk)),
    scanMs: Math.round(median(scan)),
  };
  console.log(JSON.stringify(summary, null, 2));
  console.log(
    `\n| changed files | walk alone (find) | scan | \n| --- | --- | --- |\n| ${FILES} | ${summary.walkMs} ms | ${summary.scanMs} ms |`,
  );
} finally {
  await runtime.remove(info.id);
}
