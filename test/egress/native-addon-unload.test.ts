// The addon's threads (the tunnel relay's and the TLS legs') are detached and run for the life of
// the process. Node unloads (dlclose) an addon when the last environment that loaded it ends,
// such as a worker thread: the threads then ran on in unmapped code, and the relay thread, which
// wakes at least once a second, crashed the whole process with a segmentation fault about a
// second later (bench/egress-proxy.bench.js ended so in 3 of 15 short runs, its proxies run on
// worker threads). The addon is linked so it is never unloaded (binding.gyp: -z nodelete).
//
// The test runs a separate Node process (a crash must not take the test runner with it): a worker
// thread loads the addon, relays a few bytes through the relay thread and starts a TLS leg, and
// is terminated with both running (its clean-up hook stops them); the process lives on for more
// than one wake-up of the relay thread, then a second worker loads the addon again and relays.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import { ADDON_FILE, nativeAddon } from '../../src/egress/tunnel-relay.js';

const ADDON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..', ADDON_FILE);

/** Runs in each worker: a relay that carries bytes, and a TLS leg waiting for a ClientHello. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const addon = require(workerData.addon);
const fd = (socket) => socket._handle.fd;
const server = net.createServer({ allowHalfOpen: true });
const waiting = [];
server.on('connection', (socket) => {
  socket.on('error', () => {});
  waiting.shift()(socket);
});
const accept = () => new Promise((resolve) => waiting.push(resolve));
const connect = () => {
  const next = accept();
  net.connect(server.address().port, '127.0.0.1').on('error', () => {});
  return next;
};
server.listen(0, '127.0.0.1', async () => {
  // The relay's client side; the relay connects to this server itself and sends its initial
  // bytes first, through the relay thread's event loop.
  const client = await connect();
  client._handle.readStop();
  const upstream = accept();
  addon.connect(fd(client), '127.0.0.1', server.address().port, Buffer.from(workerData.text),
    0, 5000, () => {});
  const relayed = await new Promise(async (resolve) => (await upstream).once('data', resolve));
  // A TLS leg (the sandbox's side) waiting for a ClientHello: the leg thread runs too.
  const sandbox = await connect();
  sandbox._handle.readStop();
  const context = addon.tls.serverContext(workerData.cert, workerData.key);
  const leg = addon.tls.start(fd(sandbox), context, null, null, () => {});
  parentPort.postMessage({ relayed: String(relayed), relays: addon.active(),
    legs: addon.tls.active(), leg: typeof leg });
});
`;

/** The parent process: two workers in turn, each terminated with its relay and leg running. */
const PARENT = `
const { Worker } = require('node:worker_threads');
const [addon, cert, key] = JSON.parse(process.argv[1]);
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
(async () => {
  for (const round of [1, 2]) {
    const worker = new Worker(${JSON.stringify(WORKER)},
      { eval: true, workerData: { addon, cert, key, text: 'round ' + round } });
    const message = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    console.log(JSON.stringify(message));
    await worker.terminate();
    // The relay thread wakes at least once a second: more than two wake-ups.
    await pause(2500);
    console.log('alive after round ' + round);
  }
})().catch((error) => { console.error(error); process.exit(2); });
`;

describe('native addon in a worker thread that ends', () => {
  it('does not crash the process (the addon stays loaded, its threads keep running)', async () => {
    expect(nativeAddon()).toBeDefined();
    const ca = await CertificateAuthority.create({ commonName: 'unload test' });
    const leaf = await ca.leafFor('leg.test');
    const child = spawn(
      process.execPath,
      ['-e', PARENT, JSON.stringify([ADDON, leaf.certificatePem, leaf.privateKeyPem])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += String(d)));
    child.stderr.on('data', (d: Buffer) => (err += String(d)));
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.once('exit', (c, s) => resolve([c, s])),
    );
    expect({ code, signal, err }).toEqual({ code: 0, signal: null, err: '' });
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(4);
    for (const round of [1, 2]) {
      // Each worker's relay carried its bytes, and its relay and leg were running when it ended.
      expect(JSON.parse(lines[2 * round - 2]!)).toEqual({
        relayed: `round ${round}`,
        relays: 1,
        legs: 1,
        leg: 'number',
      });
      expect(lines[2 * round - 1]).toBe(`alive after round ${round}`);
    }
  });
});
