/* global process, Buffer, URL, console, setTimeout */
// Egress proxy benchmark, all on loopback: an HTTPS server on 127.0.0.2 answering for
// bench.test, the proxy on 127.0.0.1 (one passthrough-tunnel policy, one method-limited policy
// with TLS interception), and the same requests made directly for comparison. The client, the
// server and the proxies each run on their own thread (worker_threads), as they would be
// separate processes in production.
//
// Besides the uncapped downloads (as fast as client, server and proxy can go on this machine),
// the same downloads are made with the server sending at a fixed line rate (1 Gbit/s, the fastest
// link such a host has): there the question is whether the proxy keeps up with the link. For each
// download the proxy thread's own CPU time is read (/proc/thread-self/stat), so its cost per
// 100 MB can be compared between runs even when the machine is loaded.
//
// Paths, measured in rotation: direct; the passthrough tunnel on the native tunnel relay (the
// default) and on Node streams (the fallback); interception (method limits) on the native TLS
// legs (the default) and on Node's TLS sockets (the fallback); and a reference that is not
// Berth: a bare Node TLS-to-TLS relay with no HTTP and no checks, the least any interceptor
// built on Node's TLS pays per byte. Besides the proxy thread's CPU (with the addon's threads:
// the relay and the TLS legs), the whole process's CPU per 100 MB is read (client, server,
// proxies, GC).
//
// Run: npx tsc -b && node bench/egress-proxy.bench.js [--quick] [--throughput-only | --latency-only]
// Prints a JSON summary and a Markdown table for docs/benchmarks.md.
import { readFileSync, readdirSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CertificateAuthority } from '../dist/egress/certificate-authority.js';
import { EgressProxy } from '../dist/egress/egress-proxy.js';
import { EgressPolicy } from '../dist/domain/internet/egress-policy.js';

const QUICK = process.argv.includes('--quick');
const THROUGHPUT_ONLY = process.argv.includes('--throughput-only');
const LATENCY_ONLY = process.argv.includes('--latency-only');
/** The line rate of the paced downloads: 1 Gbit/s. */
const LINE_RATE_BYTES_PER_SECOND = 125_000_000;
const LATENCY_RUNS = QUICK ? 60 : 300;
const WARMUP = 30;
const DOWNLOAD_BYTES = 100 * 1024 * 1024;
const DOWNLOAD_RUNS = QUICK ? 1 : 7;
const CONCURRENT = 200;
const HOST = 'bench.test';
const SERVER_ADDRESS = '127.0.0.2';
const PROXY_ADDRESS = '127.0.0.1';

const CHUNK = Buffer.alloc(256 * 1024, 0x61);

async function startServer(upstreamCa) {
  const leaf = await upstreamCa.leafFor(HOST);
  const server = https.createServer(
    { key: leaf.privateKeyPem, cert: leaf.certificatePem, ALPNProtocols: ['http/1.1'] },
    (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      if (url.pathname === '/bytes') {
        const total = Number(url.searchParams.get('n'));
        // Bytes per second; 0 = as fast as the connection takes them.
        const rate = Number(url.searchParams.get('rate') ?? 0);
        res.writeHead(200, { 'content-length': total, 'content-type': 'application/octet-stream' });
        const start = process.hrtime.bigint();
        let sent = 0;
        const pump = () => {
          // Paced: never ahead of rate × elapsed time; the timer comes back for the rest.
          const budget =
            rate > 0
              ? Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * rate) - sent
              : total - sent;
          let allowed = Math.min(budget, total - sent);
          while (allowed > 0) {
            const piece = CHUNK.subarray(0, Math.min(CHUNK.length, allowed));
            sent += piece.length;
            allowed -= piece.length;
            if (!res.write(piece)) return res.once('drain', pump);
          }
          if (sent >= total) res.end();
          else setTimeout(pump, 1);
        };
        pump();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    },
  );
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve) => server.listen(0, SERVER_ADDRESS, resolve));
  return server;
}

async function startProxy(port, upstreamCa, methods, tunnelRelay, interceptTls) {
  const policy = new EgressPolicy(
    {
      access: 'allowlist',
      presets: [],
      domains: [HOST],
      tunnelOnly: [],
      ...(methods ? { methods } : {}),
    },
    { extraPorts: { tunnel: [port] } },
  );
  const ca = methods ? await CertificateAuthority.create({ commonName: 'env_bench' }) : undefined;
  const proxy = new EgressProxy({
    policy,
    resolver: async (host) => (host === HOST ? [SERVER_ADDRESS] : []),
    guard: { allow: [{ range: SERVER_ADDRESS, hosts: [HOST] }] },
    ...(ca ? { ca } : {}),
    upstreamCa: [upstreamCa.certificatePem],
    useBundledRoots: false,
    onDecision: () => undefined,
    tunnelRelay,
    interceptTls,
  });
  const address = await proxy.listen({ host: PROXY_ADDRESS });
  return { proxy, port: address.port, ca };
}

/** A connected socket to the server: direct, or through a CONNECT tunnel. */
function rawSocket(serverPort, proxyPort) {
  return new Promise((resolve, reject) => {
    if (proxyPort === undefined) {
      const s = net.connect(serverPort, SERVER_ADDRESS, () => resolve(s));
      s.once('error', reject);
      return;
    }
    const s = net.connect(proxyPort, PROXY_ADDRESS, () =>
      s.write(`CONNECT ${HOST}:${serverPort} HTTP/1.1\r\nHost: ${HOST}:${serverPort}\r\n\r\n`),
    );
    s.once('error', reject);
    let head = '';
    const onData = (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head.split('\r\n')[0]));
      resolve(s);
    };
    s.on('data', onData);
  });
}

/** New connection + TLS + one GET; resolves with the body byte count. */
async function oneRequest(serverPort, proxyPort, ca, path) {
  const socket = await rawSocket(serverPort, proxyPort);
  return new Promise((resolve, reject) => {
    const secure = tls.connect(
      { socket, servername: HOST, ca, ALPNProtocols: ['http/1.1'] },
      () => {
        secure.write(
          `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${serverPort}\r\nConnection: close\r\n\r\n`,
        );
      },
    );
    let bytes = 0;
    let start = '';
    secure.on('data', (d) => {
      if (start.length < 400) start += d.subarray(0, 400).toString('latin1');
      bytes += d.length;
    });
    secure.on('end', () => {
      secure.destroy();
      if (bytes < 1000 && !start.startsWith('HTTP/1.1 200')) console.error(`answer: ${start}`);
      resolve(bytes);
    });
    secure.on('error', reject);
  });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Latency of a new HTTPS request per path. The paths are measured in rotation (direct, tunnel,
 * intercept, direct, …) so that load from elsewhere on the machine hits all of them alike; the
 * added latency is the median of the per-round differences.
 */
async function latencies(paths) {
  for (const p of paths)
    for (let i = 0; i < WARMUP; i++) await oneRequest(p.serverPort, p.proxyPort, p.ca, '/');
  const samples = paths.map(() => []);
  for (let i = 0; i < LATENCY_RUNS; i++) {
    for (const [k, p] of paths.entries()) {
      const t = process.hrtime.bigint();
      await oneRequest(p.serverPort, p.proxyPort, p.ca, '/');
      samples[k].push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  return paths.map((p, k) => {
    const added = samples[k].map((v, i) => v - samples[0][i]).sort((a, b) => a - b);
    const sorted = [...samples[k]].sort((a, b) => a - b);
    return {
      label: p.label,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      addedP50: percentile(added, 50),
    };
  });
}

/** CPU time (ms) the worker's own thread has used so far. */
function threadCpuMs(worker) {
  return new Promise((resolve) => {
    worker.once('message', (m) => resolve(m.cpuMs));
    worker.postMessage('cpu');
  });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * 100 MB downloads, in rotation like the latencies; the median rate per path and the median CPU
 * time of the proxy thread per 100 MB. `rate` paces the server (bytes per second, 0 = uncapped).
 */
async function throughputs(paths, rate = 0, server) {
  const rates = paths.map(() => []);
  const cpu = paths.map(() => []);
  const all = paths.map(() => []);
  const client = paths.map(() => []);
  const serverCpu = paths.map(() => []);
  for (let i = 0; i < DOWNLOAD_RUNS; i++) {
    for (const [k, p] of paths.entries()) {
      const cpuBefore = p.worker ? await threadCpuMs(p.worker) : 0;
      const t = process.hrtime.bigint();
      const usage = process.cpuUsage();
      const clientBefore = statCpuMs('/proc/thread-self/stat');
      const serverBefore = await threadCpuMs(server);
      const bytes = await oneRequest(
        p.serverPort,
        p.proxyPort,
        p.ca,
        `/bytes?n=${DOWNLOAD_BYTES}&rate=${rate}`,
      );
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      const used = process.cpuUsage(usage);
      client[k].push(statCpuMs('/proc/thread-self/stat') - clientBefore);
      serverCpu[k].push((await threadCpuMs(server)) - serverBefore);
      all[k].push(((used.user + used.system) / 1000) * ((100 * 1024 * 1024) / DOWNLOAD_BYTES));
      if (bytes < DOWNLOAD_BYTES) throw new Error(`${p.label}: short download ${bytes}`);
      rates[k].push(DOWNLOAD_BYTES / 1024 / 1024 / seconds);
      if (p.worker)
        cpu[k].push(
          ((await threadCpuMs(p.worker)) - cpuBefore) * ((100 * 1024 * 1024) / DOWNLOAD_BYTES),
        );
    }
  }
  return paths.map((p, k) => ({
    label: p.label,
    mbPerSecond: median(rates[k]),
    // Each round's rate over the same round's direct rate, then the median: load that comes and
    // goes between rounds moves both sides of one ratio alike.
    vsDirect: median(rates[k].map((rate, i) => rate / rates[0][i])),
    allThreadsCpuMsPer100Mb: median(all[k]),
    clientCpuMs: median(client[k]),
    serverCpuMs: median(serverCpu[k]),
    ...(p.worker ? { proxyCpuMsPer100Mb: median(cpu[k]) } : {}),
  }));
}

/** Opens `CONCURRENT` TLS connections at once, holds them all, then makes one request on each. */
async function concurrency(label, serverPort, proxyPort, ca) {
  const t = process.hrtime.bigint();
  const opened = await Promise.allSettled(
    Array.from({ length: CONCURRENT }, async () => {
      const socket = await rawSocket(serverPort, proxyPort);
      return new Promise((resolve, reject) => {
        const secure = tls.connect(
          { socket, servername: HOST, ca, ALPNProtocols: ['http/1.1'] },
          () => resolve(secure),
        );
        secure.once('error', reject);
      });
    }),
  );
  const live = opened.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const answered = await Promise.allSettled(
    live.map(
      (secure) =>
        new Promise((resolve, reject) => {
          let text = '';
          secure.on('data', (d) => (text += d.toString('latin1')));
          secure.on('end', () =>
            text.startsWith('HTTP/1.1 200') ? resolve() : reject(new Error(text.slice(0, 40))),
          );
          secure.on('error', reject);
          secure.write(
            `GET / HTTP/1.1\r\nHost: ${HOST}:${serverPort}\r\nConnection: close\r\n\r\n`,
          );
        }),
    ),
  );
  const errors =
    opened.length - live.length + answered.filter((r) => r.status === 'rejected').length;
  return { label, connections: CONCURRENT, errors, ms: Number(process.hrtime.bigint() - t) / 1e6 };
}

function startWorker(data) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: data });
    worker.once('message', (message) => resolve({ worker, ...message }));
    worker.once('error', reject);
  });
}

/** utime + stime of a thread from its stat file, in ms (clock ticks are 10 ms on Linux). */
function statCpuMs(file) {
  const fields = readFileSync(file, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU of the native tunnel relay's thread (one per process, shared by the proxies). */
function relayThreadCpuMs() {
  let total = 0;
  for (const task of readdirSync('/proc/self/task')) {
    try {
      const name = readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim();
      if (name === 'berth-relay' || name === 'berth-tls')
        total += statCpuMs(`/proc/self/task/${task}/stat`);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return total;
}

async function workerMain() {
  const { role, upstreamCaPem, serverPort, methods, tunnelRelay, interceptTls } = workerData;
  // The proxy's CPU: its own thread, plus the native relay's thread that carries its tunnels
  // (the paths are measured one at a time, so that thread works only for the proxy measured).
  parentPort.on('message', (message) => {
    if (message !== 'cpu') return;
    parentPort.postMessage({ cpuMs: statCpuMs('/proc/thread-self/stat') + relayThreadCpuMs() });
  });
  const upstreamCa = await CertificateAuthority.fromPem(upstreamCaPem);
  if (role === 'server') {
    const server = await startServer(upstreamCa);
    parentPort.postMessage({ port: server.address().port });
    return;
  }
  if (role === 'tls-relay') {
    const relay = await startTlsRelay(serverPort, upstreamCa);
    parentPort.postMessage(relay);
    return;
  }
  const proxy = await startProxy(serverPort, upstreamCa, methods, tunnelRelay, interceptTls);
  parentPort.postMessage({ port: proxy.port, caPem: proxy.ca?.certificatePem });
}

/**
 * A reference, not Berth: the least any interceptor written on Node's TLS must do per byte.
 * It answers CONNECT without a check, terminates the client's TLS and pipes the cleartext to a
 * TLS connection to the server and back: no HTTP parsing, no request checks, the same stream
 * buffers as the proxy's interception. The intercepting proxy cannot be cheaper than this.
 */
async function startTlsRelay(serverPort, upstreamCa) {
  const ca = await CertificateAuthority.create({ commonName: 'bench tls relay' });
  const leaf = await ca.leafFor(HOST);
  const context = tls.createSecureContext({ key: leaf.privateKeyPem, cert: leaf.certificatePem });
  const buffers = { highWaterMark: 256 * 1024 };
  const listener = net.createServer((socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      const client = new tls.TLSSocket(socket, {
        isServer: true,
        secureContext: context,
        ALPNProtocols: ['http/1.1'],
        ...buffers,
      });
      const upstream = tls.connect({
        host: SERVER_ADDRESS,
        port: serverPort,
        servername: HOST,
        ca: [upstreamCa.certificatePem],
        ALPNProtocols: ['http/1.1'],
        ...buffers,
      });
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
  });
  await new Promise((resolve) => listener.listen(0, PROXY_ADDRESS, resolve));
  return { port: listener.address().port, caPem: ca.certificatePem };
}

async function main() {
  const upstreamCa = await CertificateAuthority.create({ commonName: 'bench upstream' });
  const upstreamCaPem = upstreamCa.toPem();
  const server = await startWorker({ role: 'server', upstreamCaPem });
  const serverPort = server.port;
  const tunnel = await startWorker({ role: 'proxy', upstreamCaPem, serverPort });
  // The same tunnel relayed with Node streams (the fallback when the native relay is not built).
  const streams = await startWorker({
    role: 'proxy',
    upstreamCaPem,
    serverPort,
    tunnelRelay: 'streams',
  });
  const intercept = await startWorker({
    role: 'proxy',
    upstreamCaPem,
    serverPort,
    methods: ['GET', 'HEAD'],
  });
  // The same interception on Node's TLS sockets (the fallback when the native legs are not built).
  const interceptNode = await startWorker({
    role: 'proxy',
    upstreamCaPem,
    serverPort,
    methods: ['GET', 'HEAD'],
    interceptTls: 'node',
  });
  const tlsRelay = await startWorker({ role: 'tls-relay', upstreamCaPem, serverPort });
  const upstreamPem = upstreamCa.certificatePem;
  const interceptPem = intercept.caPem;

  const paths = [
    { label: 'direct', serverPort, proxyPort: undefined, ca: upstreamPem },
    {
      label: 'tunnel',
      serverPort,
      proxyPort: tunnel.port,
      ca: upstreamPem,
      worker: tunnel.worker,
    },
    {
      label: 'tunnel (streams)',
      serverPort,
      proxyPort: streams.port,
      ca: upstreamPem,
      worker: streams.worker,
    },
    {
      label: 'intercept',
      serverPort,
      proxyPort: intercept.port,
      ca: interceptPem,
      worker: intercept.worker,
    },
    {
      label: 'intercept (Node TLS)',
      serverPort,
      proxyPort: interceptNode.port,
      ca: interceptNode.caPem,
      worker: interceptNode.worker,
    },
    {
      label: 'Node TLS relay (reference)',
      serverPort,
      proxyPort: tlsRelay.port,
      ca: tlsRelay.caPem,
      worker: tlsRelay.worker,
    },
  ];
  const loadBefore = os.loadavg()[0];
  const none = { label: '', p50: NaN, p90: NaN, p99: NaN, addedP50: NaN };
  const lat = THROUGHPUT_ONLY
    ? paths.map((p) => ({ ...none, label: p.label }))
    : await latencies(paths);
  const skipped = paths.map(() => ({
    mbPerSecond: NaN,
    vsDirect: NaN,
    proxyCpuMsPer100Mb: NaN,
    allThreadsCpuMsPer100Mb: NaN,
  }));
  const thr = LATENCY_ONLY ? skipped : await throughputs(paths, 0, server.worker);
  const paced = LATENCY_ONLY
    ? skipped
    : await throughputs(paths, LINE_RATE_BYTES_PER_SECOND, server.worker);
  const conc =
    THROUGHPUT_ONLY || LATENCY_ONLY
      ? []
      : [
          await concurrency('tunnel', serverPort, tunnel.port, upstreamPem),
          await concurrency('tunnel (streams)', serverPort, streams.port, upstreamPem),
          await concurrency('intercept', serverPort, intercept.port, interceptPem),
        ];

  for (const w of [tunnel, streams, intercept, interceptNode, tlsRelay, server])
    await w.worker.terminate();

  const summary = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    latencyMs: lat,
    loadAverage1m: { before: loadBefore, after: os.loadavg()[0] },
    addedLatencyP50Ms: {
      tunnel: lat[1].addedP50,
      tunnelStreams: lat[2].addedP50,
      intercept: lat[3].addedP50,
      interceptNodeTls: lat[4].addedP50,
      nodeTlsRelay: lat[5].addedP50,
    },
    throughput: thr,
    throughputRatio: {
      tunnel: thr[1].vsDirect,
      tunnelStreams: thr[2].vsDirect,
      intercept: thr[3].vsDirect,
      interceptNodeTls: thr[4].vsDirect,
      nodeTlsRelay: thr[5].vsDirect,
    },
    lineRate: { bytesPerSecond: LINE_RATE_BYTES_PER_SECOND, throughput: paced },
    concurrency: conc,
  };
  console.log(JSON.stringify(summary, null, 2));
  const f = (n) => (Number.isNaN(n) ? '-' : n.toFixed(2));
  const load = `${loadBefore.toFixed(1)}-${os.loadavg()[0].toFixed(1)}`;
  console.log(
    `\n| load avg | path | new HTTPS request p50 / p90 / p99 (ms) | added p50 (ms) | 100 MB uncapped (MB/s) | vs direct | proxy CPU per 100 MB (ms) | all threads' CPU per 100 MB (ms) | 100 MB at 1 Gbit/s (MB/s) | vs direct | proxy CPU per 100 MB (ms) |`,
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (let i = 0; i < paths.length; i++) {
    const added = i === 0 ? '-' : f(lat[i].addedP50);
    const ratio = (r) => (i === 0 ? '100 %' : `${Math.round(r[i].vsDirect * 100)} %`);
    const cpu = (r) => (i === 0 ? '-' : r[i].proxyCpuMsPer100Mb.toFixed(0));
    console.log(
      `| ${load} | ${lat[i].label} | ${f(lat[i].p50)} / ${f(lat[i].p90)} / ${f(lat[i].p99)} | ${added} | ${thr[i].mbPerSecond.toFixed(0)} | ${ratio(thr)} | ${cpu(thr)} | ${thr[i].allThreadsCpuMsPer100Mb.toFixed(0)} | ${paced[i].mbPerSecond.toFixed(0)} | ${ratio(paced)} | ${cpu(paced)} |`,
    );
  }
  for (const c of conc)
    console.log(
      `\n${c.label}: ${c.connections} concurrent connections held, ${c.errors} errors, ${f(c.ms)} ms`,
    );
}

if (isMainThread) await main();
else await workerMain();
