/* global process, Buffer, URL, console */
// Egress proxy benchmark, all on loopback: an HTTPS server on 127.0.0.2 answering for
// bench.test, the proxy on 127.0.0.1 (one passthrough-tunnel policy, one method-limited policy
// with TLS interception), and the same requests made directly for comparison. The client, the
// server and the proxies each run on their own thread (worker_threads), as they would be
// separate processes in production.
//
// Run: npx tsc -b && node bench/egress-proxy.bench.js [--quick]
// Prints a JSON summary and a Markdown table for docs/benchmarks.md.
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CertificateAuthority } from '../dist/egress/certificate-authority.js';
import { EgressProxy } from '../dist/egress/egress-proxy.js';
import { EgressPolicy } from '../dist/domain/internet/egress-policy.js';

const QUICK = process.argv.includes('--quick');
const LATENCY_RUNS = QUICK ? 60 : 300;
const WARMUP = 30;
const DOWNLOAD_BYTES = 100 * 1024 * 1024;
const DOWNLOAD_RUNS = QUICK ? 1 : 5;
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
        res.writeHead(200, { 'content-length': total, 'content-type': 'application/octet-stream' });
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            const piece = CHUNK.subarray(0, Math.min(CHUNK.length, total - sent));
            sent += piece.length;
            if (!res.write(piece)) return res.once('drain', pump);
          }
          res.end();
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

async function startProxy(port, upstreamCa, methods) {
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
    secure.on('data', (d) => (bytes += d.length));
    secure.on('end', () => {
      secure.destroy();
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

/** 100 MB downloads, in rotation like the latencies; the median rate per path. */
async function throughputs(paths) {
  const rates = paths.map(() => []);
  for (let i = 0; i < DOWNLOAD_RUNS; i++) {
    for (const [k, p] of paths.entries()) {
      const t = process.hrtime.bigint();
      const bytes = await oneRequest(p.serverPort, p.proxyPort, p.ca, `/bytes?n=${DOWNLOAD_BYTES}`);
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      if (bytes < DOWNLOAD_BYTES) throw new Error(`${p.label}: short download ${bytes}`);
      rates[k].push(DOWNLOAD_BYTES / 1024 / 1024 / seconds);
    }
  }
  return paths.map((p, k) => {
    const sorted = [...rates[k]].sort((a, b) => a - b);
    return { label: p.label, mbPerSecond: sorted[Math.floor(sorted.length / 2)] };
  });
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

async function workerMain() {
  const { role, upstreamCaPem, serverPort, methods } = workerData;
  const upstreamCa = await CertificateAuthority.fromPem(upstreamCaPem);
  if (role === 'server') {
    const server = await startServer(upstreamCa);
    parentPort.postMessage({ port: server.address().port });
    return;
  }
  const proxy = await startProxy(serverPort, upstreamCa, methods);
  parentPort.postMessage({ port: proxy.port, caPem: proxy.ca?.certificatePem });
}

async function main() {
  const upstreamCa = await CertificateAuthority.create({ commonName: 'bench upstream' });
  const upstreamCaPem = upstreamCa.toPem();
  const server = await startWorker({ role: 'server', upstreamCaPem });
  const serverPort = server.port;
  const tunnel = await startWorker({ role: 'proxy', upstreamCaPem, serverPort });
  const intercept = await startWorker({
    role: 'proxy',
    upstreamCaPem,
    serverPort,
    methods: ['GET', 'HEAD'],
  });
  const upstreamPem = upstreamCa.certificatePem;
  const interceptPem = intercept.caPem;

  const paths = [
    { label: 'direct', serverPort, proxyPort: undefined, ca: upstreamPem },
    { label: 'tunnel', serverPort, proxyPort: tunnel.port, ca: upstreamPem },
    { label: 'intercept', serverPort, proxyPort: intercept.port, ca: interceptPem },
  ];
  const loadBefore = os.loadavg()[0];
  const lat = await latencies(paths);
  const thr = await throughputs(paths);
  const conc = [
    await concurrency('tunnel', serverPort, tunnel.port, upstreamPem),
    await concurrency('intercept', serverPort, intercept.port, interceptPem),
  ];

  for (const w of [tunnel, intercept, server]) await w.worker.terminate();

  const summary = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    latencyMs: lat,
    loadAverage1m: { before: loadBefore, after: os.loadavg()[0] },
    addedLatencyP50Ms: { tunnel: lat[1].addedP50, intercept: lat[2].addedP50 },
    throughput: thr,
    throughputRatio: {
      tunnel: thr[1].mbPerSecond / thr[0].mbPerSecond,
      intercept: thr[2].mbPerSecond / thr[0].mbPerSecond,
    },
    concurrency: conc,
  };
  console.log(JSON.stringify(summary, null, 2));
  const f = (n) => n.toFixed(2);
  console.log(
    '\n| path | new HTTPS request p50 / p90 / p99 (ms) | added p50 (ms) | 100 MB download (MB/s) | vs direct |',
  );
  console.log('| --- | --- | --- | --- | --- |');
  for (let i = 0; i < 3; i++) {
    const added = i === 0 ? '-' : f(lat[i].addedP50);
    const ratio =
      i === 0 ? '100 %' : `${Math.round((thr[i].mbPerSecond / thr[0].mbPerSecond) * 100)} %`;
    console.log(
      `| ${lat[i].label} | ${f(lat[i].p50)} / ${f(lat[i].p90)} / ${f(lat[i].p99)} | ${added} | ${thr[i].mbPerSecond.toFixed(0)} | ${ratio} |`,
    );
  }
  for (const c of conc)
    console.log(
      `\n${c.label}: ${c.connections} concurrent connections held, ${c.errors} errors, ${f(c.ms)} ms`,
    );
}

if (isMainThread) await main();
else await workerMain();
