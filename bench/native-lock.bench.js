/* global process, Buffer, console, setTimeout, performance */
// Native addon lock: how long a call from JavaScript into the native addon (native/tunnel-relay)
// waits while tunnels move bytes at full speed on the addon's threads. The addon's thread and
// the JavaScript thread share one lock per part (relays, TLS legs); a call such as active(),
// idleMs() or stop() takes it. Two scenarios, each in a fresh process, with the far ends in
// processes of their own (test/egress/support/full-speed-peers.js): three passthrough relays,
// and one TLS splice (upstream leg -> sandbox leg, all on the leg thread). For each, about one
// call per millisecond for --seconds: the calls' latency (p50, p99, p99.9, max), the same for a
// control call into the other, idle part of the addon (the machine's own scheduling noise), the
// bytes moved (MB/s) and, when the build has it, lockStats() (the longest hold and the most
// bytes moved in one).
//
// Run: node bench/native-lock.bench.js [--seconds 5] [--rounds 3] [--addon PATH]...
// With several --addon builds (for example the build before a change, made elsewhere with
// node-gyp, and native/tunnel-relay/build/Release/tunnel_relay.node), the runs alternate between
// them. Needs openssl (a throwaway certificate). Prints JSON lines and a Markdown table for
// docs/benchmarks.md.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PEERS = path.join(ROOT, 'test/egress/support/full-speed-peers.js');
const DEFAULT_ADDON = path.join(ROOT, 'native/tunnel-relay/build/Release/tunnel_relay.node');
const SCENARIOS = ['relay', 'tls'];
const TUNNELS = 3;

function flag(name, fallback) {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : fallback;
}

function flags(name) {
  const values = [];
  process.argv.forEach((arg, i) => {
    if (arg === name) values.push(process.argv[i + 1]);
  });
  return values;
}

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await wait(10);
  }
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** The far ends' process: `read()` is what its reading end received so far. */
function peers(args, children) {
  const child = spawn(process.execPath, [PEERS, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let read = 0;
  let buffered = '';
  const lines = [];
  child.stdout.on('data', (data) => {
    buffered += data.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const line of parts) {
      if (line.startsWith('read ')) read = Number(line.slice(5));
      else lines.push(line);
    }
  });
  return { read: () => read, line: async () => (await until(() => lines.length > 0), lines[0]) };
}

/** A listener whose sockets Node never reads (pauseOnConnect): the addon takes them. */
async function listener() {
  const accepted = [];
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => undefined);
    accepted.push(socket);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: server.address().port, accepted };
}

async function measure(seconds, call, control, moved) {
  const latencies = [];
  const controls = [];
  const before = moved();
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    let t = performance.now();
    call();
    latencies.push(performance.now() - t);
    t = performance.now();
    control();
    controls.push(performance.now() - t);
    await wait(1);
  }
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  controls.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    p999: percentile(latencies, 0.999),
    max: latencies.at(-1),
    controlP999: percentile(controls, 0.999),
    controlMax: controls.at(-1),
    mbPerSecond: (moved() - before) / 1e6 / elapsed,
  };
}

/** One scenario with one build, in this (child) process; prints one JSON line. */
async function child(scenario, addonPath, seconds, certificateDir) {
  const addon = createRequire(import.meta.url)(addonPath);
  const children = [];
  const servers = [];
  const noop = () => undefined;
  const stats = (part) => (typeof part.lockStats === 'function' ? part.lockStats() : undefined);
  let result;
  try {
    if (scenario === 'relay') {
      const sink = peers(['sink'], children);
      const port = Number((await sink.line()).replace('port ', ''));
      const client = await listener();
      servers.push(client.server);
      peers(['source', String(client.port), String(TUNNELS)], children);
      await until(() => client.accepted.length === TUNNELS);
      for (const socket of client.accepted)
        addon.connect(socket._handle.fd, '127.0.0.1', port, Buffer.alloc(0), 0, 5000, noop);
      await until(() => sink.read() > 64 * 1024 * 1024);
      stats(addon);
      result = await measure(
        seconds,
        () => addon.active(),
        () => addon.tls.active(),
        sink.read,
      );
      result.lock = stats(addon);
    } else {
      const key = readFileSync(path.join(certificateDir, 'key.pem'), 'utf8');
      const cert = readFileSync(path.join(certificateDir, 'cert.pem'), 'utf8');
      const upstreamSide = await listener();
      const sandboxSide = await listener();
      servers.push(upstreamSide.server, sandboxSide.server);
      const far = peers(
        [
          'tls',
          String(upstreamSide.port),
          String(sandboxSide.port),
          JSON.stringify({ key, cert, ca: cert }),
        ],
        children,
      );
      await until(() => upstreamSide.accepted.length > 0 && sandboxSide.accepted.length > 0);
      const legs = addon.tls;
      const sandbox = legs.start(
        sandboxSide.accepted[0]._handle.fd,
        legs.serverContext(cert, key),
        null,
        null,
        noop,
      );
      const upstream = legs.start(
        upstreamSide.accepted[0]._handle.fd,
        legs.clientContext(cert),
        'leg.test',
        null,
        (kind) => {
          if (kind === 1) legs.splice(sandbox, upstream, Number.MAX_SAFE_INTEGER); // SECURE
        },
      );
      await until(() => far.read() > 64 * 1024 * 1024);
      stats(legs);
      result = await measure(
        seconds,
        () => {
          legs.idleMs(upstream);
          legs.active();
        },
        () => addon.active(),
        far.read,
      );
      result.lock = stats(legs);
      legs.stop(upstream);
      legs.stop(sandbox);
    }
  } finally {
    for (const c of children) c.kill('SIGKILL');
    for (const s of servers) s.close();
  }
  console.log(JSON.stringify({ scenario, addon: addonPath, ...result }));
  process.exit(0);
}

function runChild(scenario, addonPath, seconds, certificateDir) {
  const out = execFileSync(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      '--child',
      scenario,
      addonPath,
      String(seconds),
      certificateDir,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return JSON.parse(out.trim().split('\n').at(-1));
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const f = (value, digits = 1) => (value === undefined ? '-' : value.toFixed(digits));

async function main() {
  const seconds = Number(flag('--seconds', '5'));
  const rounds = Number(flag('--rounds', '3'));
  const addons = flags('--addon');
  if (addons.length === 0) addons.push(DEFAULT_ADDON);
  const certificateDir = mkdtempSync(path.join(os.tmpdir(), 'berth-lock-bench-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        path.join(certificateDir, 'key.pem'),
        '-out',
        path.join(certificateDir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=leg.test',
        '-addext',
        'subjectAltName=DNS:leg.test',
      ],
      { stdio: 'ignore' },
    );
    const results = [];
    for (let round = 0; round < rounds; round++) {
      for (const scenario of SCENARIOS) {
        for (const addon of addons) {
          const result = runChild(scenario, addon, seconds, certificateDir);
          console.log(JSON.stringify(result));
          results.push(result);
        }
      }
    }
    console.log(
      `\nMedians of ${rounds} runs of ${seconds} s each (${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)} at the end):\n`,
    );
    console.log(
      '| build | scenario | calls | p50 ms | p99 ms | p99.9 ms | max ms | control p99.9 / max ms | MB/s | longest hold ms | most bytes in a hold |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const addon of addons) {
      for (const scenario of SCENARIOS) {
        const runs = results.filter((r) => r.addon === addon && r.scenario === scenario);
        const m = (pick) => median(runs.map(pick));
        const held = runs.every((r) => r.lock !== undefined);
        console.log(
          `| ${addon} | ${scenario} | ${m((r) => r.calls)} | ${f(
            m((r) => r.p50),
            3,
          )} | ${f(
            m((r) => r.p99),
            2,
          )} | ${f(m((r) => r.p999))} | ${f(m((r) => r.max))} | ${f(m((r) => r.controlP999))} / ${f(m((r) => r.controlMax))} | ${f(
            m((r) => r.mbPerSecond),
            0,
          )} | ${held ? f(m((r) => r.lock.maxHoldMs)) : '-'} | ${held ? (m((r) => r.lock.maxHoldBytes) / 1e6).toFixed(1) + ' MB' : '-'} |`,
        );
      }
    }
  } finally {
    rmSync(certificateDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  const [, , , scenario, addonPath, seconds, certificateDir] = process.argv;
  await child(scenario, addonPath, Number(seconds), certificateDir);
} else {
  await main();
}
