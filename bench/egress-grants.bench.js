/* global process, Buffer, URL, console */
// Egress credentials and path rules benchmark: what setting a credential header and checking
// method and path rules (issue 19 items 1-2) add per intercepted request over plain
// interception (method limits only), in the same run. All on loopback: an HTTPS server on
// 127.0.0.2 answering for bench.test, two proxies on 127.0.0.1 (one with `methods: [GET]`, one
// with the same plus a credential for the host and 20 rules, the matching one last), each on its
// own worker thread as in bench/egress-proxy.bench.js. The client keeps one intercepted tunnel
// per proxy open and sends GETs one after the other (a path with dot segments and repeated
// slashes, and a client Authorization header the proxy replaces); the proxies are measured in
// rotation, batch by batch, so that load from elsewhere on the machine hits both alike.
//
// Run: npx tsc -b && node bench/egress-grants.bench.js [--quick]
// Prints a JSON summary (p50 and p90 per request, the difference of the p50s) for
// docs/benchmarks.md.
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CertificateAuthority } from '../dist/egress/certificate-authority.js';
import { EgressProxy } from '../dist/egress/egress-proxy.js';
import { EgressPolicy } from '../dist/domain/internet/egress-policy.js';

const QUICK = process.argv.includes('--quick');
const ROUNDS = QUICK ? 10 : 40;
const BATCH = 50;
const WARMUP = 200;
const HOST = 'bench.test';
const SERVER_ADDRESS = '127.0.0.2';
const PROXY_ADDRESS = '127.0.0.1';
const PATH = '/repos//acme/./payments/contents/src/../src/index.ts?ref=main';
const BODY = Buffer.alloc(512, 0x61);

function rulesFor(host) {
  const rules = [];
  for (let i = 0; i < 19; i++)
    rules.push({ host, methods: ['GET'], paths: [`/orgs/team-${i}/*`, `/repos/other-${i}/*`] });
  rules.push({ host, methods: ['GET', 'HEAD'], paths: ['/user', '/repos/acme/*'] });
  return rules;
}

async function proxyWorker() {
  const { upstreamCaPem, serverPort, grants } = workerData;
  const internet = {
    access: 'allowlist',
    presets: [],
    domains: [HOST],
    tunnelOnly: [],
    methods: ['GET'],
    ...(grants
      ? {
          rules: rulesFor(HOST),
          credentials: [
            { host: HOST, header: 'Authorization', secret: 'T', format: 'Bearer {value}' },
          ],
        }
      : {}),
  };
  const policy = new EgressPolicy(internet, { extraPorts: { tunnel: [serverPort] } });
  const ca = await CertificateAuthority.create({ commonName: 'env_bench' });
  const proxy = new EgressProxy({
    policy,
    ca,
    resolver: async (host) => (host === HOST ? [SERVER_ADDRESS] : []),
    guard: { allow: [{ range: SERVER_ADDRESS, hosts: [HOST] }] },
    upstreamCa: [upstreamCaPem],
    useBundledRoots: false,
    onDecision: () => undefined,
    ...(grants
      ? {
          credentials: [
            { host: HOST, header: 'Authorization', value: 'Bearer bench-stored-credential' },
          ],
        }
      : {}),
  });
  const address = await proxy.listen({ host: PROXY_ADDRESS });
  parentPort.postMessage({ port: address.port, caPem: ca.certificatePem });
}

function startProxy(upstreamCaPem, serverPort, grants) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { upstreamCaPem, serverPort, grants },
    });
    worker.once('message', (info) => resolve({ ...info, worker }));
    worker.once('error', reject);
  });
}

async function startServer(upstreamCa) {
  const leaf = await upstreamCa.leafFor(HOST);
  let authorised = 0;
  const server = https.createServer(
    { key: leaf.privateKeyPem, cert: leaf.certificatePem, ALPNProtocols: ['http/1.1'] },
    (req, res) => {
      if (req.headers.authorization === 'Bearer bench-stored-credential') authorised++;
      res.writeHead(200, { 'content-length': BODY.length });
      res.end(BODY);
    },
  );
  await new Promise((resolve) => server.listen(0, SERVER_ADDRESS, resolve));
  return { server, port: server.address().port, authorised: () => authorised };
}

/** An intercepted tunnel's TLS socket, kept open for sequential requests. */
function tunnel(proxyPort, serverPort, caPem) {
  return new Promise((resolve, reject) => {
    const raw = net.connect(proxyPort, PROXY_ADDRESS, () =>
      raw.write(`CONNECT ${HOST}:${serverPort} HTTP/1.1\r\nHost: ${HOST}:${serverPort}\r\n\r\n`),
    );
    raw.once('error', reject);
    let head = '';
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      raw.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head));
      const secure = tls.connect({
        socket: raw,
        servername: HOST,
        ca: caPem,
        ALPNProtocols: ['http/1.1'],
      });
      secure.setNoDelay(true);
      secure.once('secureConnect', () => resolve(secure));
      secure.once('error', reject);
    };
    raw.on('data', onData);
  });
}

/** One GET and its whole response; resolves with the time it took in ms. */
function request(socket, serverPort) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let buffer = Buffer.alloc(0);
    const onData = (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buffer.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 200')) {
        socket.off('data', onData);
        return reject(new Error(head.split('\r\n')[0]));
      }
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? '0');
      if (buffer.length < end + 4 + length) return;
      socket.off('data', onData);
      resolve(Number(process.hrtime.bigint() - start) / 1e6);
    };
    socket.on('data', onData);
    socket.write(
      `GET ${PATH} HTTP/1.1\r\nHost: ${HOST}:${serverPort}\r\nAuthorization: Bearer client-made-up\r\nAccept: */*\r\n\r\n`,
    );
  });
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const upstreamCa = await CertificateAuthority.create({ commonName: 'bench upstream' });
  const server = await startServer(upstreamCa);
  const plain = await startProxy(upstreamCa.certificatePem, server.port, false);
  const grants = await startProxy(upstreamCa.certificatePem, server.port, true);
  const variants = [
    { label: 'interception', proxy: plain, times: [] },
    { label: 'interception + credential + 20 rules', proxy: grants, times: [] },
  ];
  for (const v of variants) {
    v.socket = await tunnel(v.proxy.port, server.port, v.proxy.caPem);
    for (let i = 0; i < WARMUP; i++) await request(v.socket, server.port);
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order)
      for (let i = 0; i < BATCH; i++) v.times.push(await request(v.socket, server.port));
  }
  const rows = variants.map((v) => ({
    label: v.label,
    requests: v.times.length,
    p50Ms: Number(percentile(v.times, 50).toFixed(3)),
    p90Ms: Number(percentile(v.times, 90).toFixed(3)),
  }));
  // The checks alone, on this thread: the policy's decision for the same request, without and
  // with the rules (CPU per request, free of the network's noise).
  const decide = (grantsOn) => {
    const policy = new EgressPolicy(
      {
        access: 'allowlist',
        presets: [],
        domains: [HOST],
        tunnelOnly: [],
        methods: ['GET'],
        ...(grantsOn ? { rules: rulesFor(HOST) } : {}),
      },
      { extraPorts: { tunnel: [443] } },
    );
    const n = QUICK ? 20_000 : 200_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++)
      policy.decide({ host: HOST, port: 443, method: 'GET', scheme: 'https', target: PATH });
    return Number(process.hrtime.bigint() - start) / 1e3 / n;
  };
  decide(false);
  decide(true);
  const decisionMicros = { plain: decide(false), rules: decide(true) };
  const summary = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown'}`,
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    rows,
    addedP50Ms: Number((rows[1].p50Ms - rows[0].p50Ms).toFixed(3)),
    decisionMicrosecondsPerRequest: {
      plain: Number(decisionMicros.plain.toFixed(2)),
      rules: Number(decisionMicros.rules.toFixed(2)),
    },
    upstreamSawStoredCredential: server.authorised(),
  };
  console.log(JSON.stringify(summary, null, 2));
  for (const v of variants) {
    v.socket.destroy();
    await v.proxy.worker.terminate();
  }
  server.server.close();
  server.server.closeAllConnections();
}

if (isMainThread) await main();
else await proxyWorker();
