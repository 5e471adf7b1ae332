/* global console, process */
// CLI start-up: `berth --version` and `berth task show ID` (against a running server on
// loopback) as whole processes, each against `node -e 0` timed in the same run, rounds
// interleaved so that the machine's load falls on all alike (budget: at most 2x `node -e 0`).
// Flags: --rounds N (default 30); --compare DIR also times DIR/bin/berth.js (another build,
// for example the one before a change). Needs the Docker engine and berth/minimal (one task).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { benchImage, removeBenchInstance } from './bench-support.js';

const flag = (name) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const rounds = Number(flag('--rounds')) || 30;
const compare = flag('--compare');
const BIN = resolve(import.meta.dirname, '../bin/berth.js');
const INSTANCE = `bench-cli-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), 'berth-bench-cli-'));
const env = { ...process.env, BERTH_CONFIG_DIR: join(root, 'config'), BERTH_INSTANCE: INSTANCE };

const repo = join(root, 'repo');
const git = (...args) => execFileSync('git', ['-C', repo, ...args], { stdio: 'ignore' });
execFileSync('git', ['init', '-q', '-b', 'main', repo]);
writeFileSync(join(repo, 'README.md'), 'bench\n');
git('add', '.');
git('-c', 'user.name=bench', '-c', 'user.email=bench@localhost', 'commit', '-qm', 'init');

const server = spawn(
  process.execPath,
  [BIN, 'serve', '--json', '--port', '0', '--data-dir', join(root, 'data'), '--allow-local-repos'],
  { env: { ...env, BERTH_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] },
);
const first = await new Promise((resolveLine) =>
  createInterface({ input: server.stdout }).once('line', resolveLine),
);
const { url, adminToken } = JSON.parse(first);
const auth = ['--url', url, '--token', adminToken];

const berth = (bin, args) => {
  const result = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`berth ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
};

const timed = (args) => {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env, stdio: 'ignore' });
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited ${result.status}`);
  return Number(process.hrtime.bigint() - start) / 1e6;
};

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

try {
  writeFileSync(
    join(root, 'bench.yaml'),
    `name: bench\nrepository: ${repo}\nimage: ${benchImage()}\n`,
  );
  berth(BIN, ['env', 'create', '--file', join(root, 'bench.yaml'), ...auth]);
  const task = JSON.parse(
    berth(BIN, ['exec', '--env', 'bench', '--command', 'true', '--wait', '--json', ...auth]),
  );

  const cases = [
    ['node -e 0', ['-e', '0']],
    ['berth --version', [BIN, '--version']],
    ['berth task show', [BIN, 'task', 'show', task.id, ...auth]],
  ];
  if (compare) {
    const other = join(resolve(compare), 'bin', 'berth.js');
    cases.push(['compared: berth --version', [other, '--version']]);
    cases.push(['compared: berth task show', [other, 'task', 'show', task.id, ...auth]]);
  }
  const times = new Map(cases.map(([name]) => [name, []]));
  for (const [, args] of cases) timed(args); // warm the file cache
  const loadBefore = loadavg()[0];
  for (let round = 0; round < rounds; round++) {
    for (const [name, args] of cases) times.get(name).push(timed(args));
  }
  const base = median(times.get('node -e 0'));
  console.log(
    `${cpus().length} cores, ${process.version}, ${rounds} rounds, load average ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after`,
  );
  for (const [name] of cases) {
    const m = median(times.get(name));
    console.log(
      `${name.padEnd(28)} median ${m.toFixed(0).padStart(5)} ms  ${(m / base).toFixed(2)}x node -e 0`,
    );
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  removeBenchInstance(INSTANCE);
  rmSync(root, { recursive: true, force: true });
}
