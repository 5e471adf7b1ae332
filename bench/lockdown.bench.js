/* global process, console */
// Internet lockdown cost per attempt, through the real lifecycle (`berth run`'s runLocal, the
// EgressEnforcer with its per-environment CA, iptables, the Docker engine): the "lockdown took N
// ms: step ms, …" line each attempt logs, for an `allowlist` environment with the
// common-dependencies preset (the image's npm/apt configuration is read) and method limits (the
// CA goes into the sandbox's trust store), started from its cache entry. Needs root (iptables).
//
// Run: npx tsc -b && node bench/lockdown.bench.js [--quick] [--image REF]
// Prints a JSON summary (p50/p90 of the total and of each step). Nothing leaves the machine: the
// command run in the sandbox is `true`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { runLocal } from '../dist/lifecycle/run-local.js';
import { benchImage, removeBenchInstance } from './bench-support.js';

const QUICK = process.argv.includes('--quick');
const IMAGE = benchImage();
const RUNS = QUICK ? 4 : 10;
const INSTANCE = `bench-lockdown-${process.pid}`;

const root = mkdtempSync(join(os.tmpdir(), 'berth-bench-lockdown-'));
const repo = join(root, 'repo');
mkdirSync(repo);
const git = (...args) =>
  execFileSync('git', [
    '-C',
    repo,
    '-c',
    'user.name=B',
    '-c',
    'user.email=b@berth.example',
    ...args,
  ]);
git('init', '-q', '-b', 'main');
writeFileSync(join(repo, 'README.md'), '# bench\n');
git('add', '-A');
git('commit', '-qm', 'initial');
const envFile = join(root, 'env.yaml');
writeFileSync(
  envFile,
  `name: lockdown-bench\nrepository: ${repo}\nimage: minimal\n` +
    `internet: { access: allowlist, presets: [common-dependencies], domains: [allowed.test], methods: [GET, HEAD] }\n`,
);

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

const totals = [];
let caInImage = 0;
const steps = {};
try {
  for (let i = 0; i <= RUNS; i++) {
    let stderr = '';
    const code = await runLocal(
      {
        envFile,
        command: 'true',
        attempts: 1,
        json: true,
        dataDir: join(root, 'data'),
        instance: INSTANCE,
        resolveImage: () => IMAGE,
        secretKey: { secretKeyFile: join(root, 'secret.key') },
        egress: { hosts: { 'allowed.test': '127.0.0.1' } },
      },
      { stdout: () => undefined, stderr: (t) => (stderr += t) },
    );
    if (code !== 0) throw new Error(`berth run failed:\n${stderr}`);
    const line = /lockdown took (\d+) ms: ([^)]*)\)/.exec(stderr);
    if (line === null) throw new Error(`no lockdown line:\n${stderr}`);
    if (i === 0) continue; // the first run builds the cache entry
    totals.push(Number(line[1]));
    for (const part of line[2].split(', ')) {
      const step = /^(\S+) (\d+)$/.exec(part);
      if (step === null) continue; // a note, such as "CA already in the image"
      (steps[step[1]] ??= []).push(Number(step[2]));
    }
    if (line[2].includes('CA already in the image')) caInImage++;
  }
  const summary = (values) => ({
    p50: Math.round(quantile(values, 0.5)),
    p90: Math.round(quantile(values, 0.9)),
  });
  console.log(
    JSON.stringify(
      {
        machine: `${os.cpus().length} cores, load ${os
          .loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')}`,
        image: IMAGE,
        runs: RUNS,
        lockdownMs: summary(totals),
        caAlreadyInImage: `${caInImage} of ${totals.length}`,
        stepsMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summary(v)])),
      },
      null,
      2,
    ),
  );
} finally {
  removeBenchInstance(INSTANCE);
  rmSync(root, { recursive: true, force: true });
}
