import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import {
  NativeTlsLeg,
  activeTlsLegs,
  nativeClientContext,
  nativeServerContext,
  nativeTlsAvailable,
  type NativeTlsContext,
} from '../../src/egress/native-tls-leg.js';
import { NativeTlsSocket } from '../../src/egress/native-tls-socket.js';
import { UpstreamConnection } from '../../src/egress/intercepted-exchange.js';
import { nativeAddon, stopReading, type TlsLegAddon } from '../../src/egress/tunnel-relay.js';
import { collect, descriptorOf, sha, socketPair, until } from './support/sockets.js';

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let leaf: { certificatePem: string; privateKeyPem: string };
let serverContext: NativeTlsContext;
const opened: Array<{ destroy(): void }> = [];

beforeAll(async () => {
  ca = await CertificateAuthority.create({ commonName: 'leg test' });
  otherCa = await CertificateAuthority.create({ commonName: 'someone else' });
  leaf = await ca.leafFor('leg.test');
  serverContext = nativeServerContext(leaf.certificatePem, leaf.privateKeyPem);
});

afterEach(async () => {
  for (const s of opened.splice(0)) s.destroy();
  await until(() => activeTlsLegs() === 0);
});

afterAll(() => undefined);

async function pair(): Promise<[net.Socket, net.Socket]> {
  const sockets = await socketPair();
  for (const s of sockets) {
    s.on('error', () => undefined);
    opened.push(s);
  }
  return sockets;
}

/** A Node TLS client on one end, a native server leg (as a Duplex) on the other. */
async function sandboxSide(alpn: string[] = ['http/1.1']) {
  const [near, far] = await pair();
  const leg = NativeTlsLeg.start(far, serverContext, undefined);
  if (leg === undefined) throw new Error('the leg did not start');
  const socket = new NativeTlsSocket(leg);
  socket.on('error', () => undefined);
  opened.push(socket);
  const client = tls.connect({
    socket: near,
    servername: 'leg.test',
    ca: ca.certificatePem,
    ALPNProtocols: alpn,
  });
  client.on('error', () => undefined);
  opened.push(client);
  return { socket, client, leg };
}

/** A Node TLS server on one end (sending `send` at once), a native client leg on the other. */
async function upstreamSide(host: string, trust: NativeTlsContext, send?: Buffer | string) {
  const [near, far] = await pair();
  const server = new tls.TLSSocket(far, {
    isServer: true,
    key: leaf.privateKeyPem,
    cert: leaf.certificatePem,
    ALPNProtocols: ['http/1.1'],
  });
  server.on('error', () => undefined);
  opened.push(server);
  if (send !== undefined) server.once('secure', () => server.write(send));
  const leg = NativeTlsLeg.start(near, trust, host);
  if (leg === undefined) throw new Error('the leg did not start');
  const upstream = new UpstreamConnection(leg);
  opened.push(upstream);
  return { upstream, server, leg };
}

describe('native TLS legs', () => {
  it('are built and load (npm run build:native)', () => {
    expect(nativeTlsAvailable()).toBe(true);
  });

  it('terminate TLS for a Node client: ALPN and SNI reported, 16 MB each way byte for byte', async () => {
    const { socket, client } = await sandboxSide();
    await new Promise((resolve) => socket.once('secure', resolve));
    expect(socket.alpnProtocol).toBe('http/1.1');
    expect(socket.servername).toBe('leg.test');
    const up = randomBytes(16 * 1024 * 1024);
    const down = randomBytes(16 * 1024 * 1024);
    const atLeg = collect(socket);
    const atClient = collect(client);
    client.end(up);
    socket.end(down);
    expect(sha(await atLeg)).toBe(sha(up));
    expect(sha(await atClient)).toBe(sha(down));
  });

  it('refuse a client that offers only h2 (no application protocol)', async () => {
    const { socket } = await sandboxSide(['h2']);
    const error = await new Promise<Error>((resolve) => socket.once('error', resolve));
    expect(error.message).toMatch(/no application protocol/);
  });

  it('verify the upstream certificate against the name and the trust store', async () => {
    const trusted = nativeClientContext([ca.certificatePem]);
    const good = await upstreamSide('leg.test', trusted, 'hello');
    await good.upstream.secure;
    expect((await good.upstream.read(false, 2000))?.toString()).toBe('hello');

    const wrongName = await upstreamSide('other.test', trusted);
    await expect(wrongName.upstream.secure).rejects.toThrow(/hostname mismatch/);

    const untrusted = await upstreamSide('leg.test', nativeClientContext([otherCa.certificatePem]));
    await expect(untrusted.upstream.secure).rejects.toThrow(/certificate verify failed/);
  });

  it('read a head up to its blank line and keep the rest for the next read', async () => {
    const trusted = nativeClientContext([ca.certificatePem]);
    const { upstream } = await upstreamSide(
      'leg.test',
      trusted,
      'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbodyHTTP/1.1',
    );
    const head = await upstream.read(true, 2000);
    expect(head?.toString()).toBe('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n');
    expect((await upstream.read(false, 2000))?.toString()).toBe('bodyHTTP/1.1');
  });

  it('splice exactly N bytes of the source between the writes before and after it', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const trusted = nativeClientContext([ca.certificatePem]);
    const { upstream, leg } = await upstreamSide(
      'leg.test',
      trusted,
      Buffer.concat([Buffer.from('HEAD\r\n\r\n'), body, Buffer.from('NEXT')]),
    );
    const { socket, client } = await sandboxSide();
    const atClient = collect(client);
    expect((await upstream.read(true, 2000))?.toString()).toBe('HEAD\r\n\r\n');
    socket.write('A');
    const spliced = socket.spliceFrom(leg, body.length);
    socket.write('B');
    await spliced;
    socket.end();
    const received = await atClient;
    expect(received.subarray(0, 1).toString()).toBe('A');
    expect(sha(received.subarray(1, 1 + body.length))).toBe(sha(body));
    expect(received.subarray(1 + body.length).toString()).toBe('B');
    // What followed the spliced bytes is still there for the next read.
    expect((await upstream.read(false, 2000))?.toString()).toBe('NEXT');
  });

  it('fail the target of a splice whose source ends early (the sandbox never gets a short body as whole)', async () => {
    const trusted = nativeClientContext([ca.certificatePem]);
    const { upstream, leg, server } = await upstreamSide('leg.test', trusted, 'HEAD\r\n\r\nshort');
    const { socket, client } = await sandboxSide();
    // The loopback pair is half-open capable: the client sees its input end (or an error).
    const clientClosed = new Promise((resolve) => {
      client.once('end', resolve);
      client.once('close', resolve);
    });
    expect((await upstream.read(true, 2000))?.toString()).toBe('HEAD\r\n\r\n');
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    const spliced = socket.spliceFrom(leg, 1000);
    socket.write('after the body');
    server.end();
    await expect(spliced).rejects.toThrow(/ended before the body/);
    // The sandbox's connection is closed: it got the 5 bytes and nothing after them.
    await clientClosed;
    expect(Buffer.concat(received).toString()).toBe('short');
  });

  it('never write into a descriptor number reused after a stop', async () => {
    const trusted = nativeClientContext([ca.certificatePem]);
    const { upstream, leg, server } = await upstreamSide('leg.test', trusted);
    await upstream.secure;
    const fd = descriptorOf(leg.raw);
    // Plaintext is queued for the upstream, then the leg is stopped and its socket closed.
    leg.write(randomBytes(4 * 1024 * 1024));
    upstream.destroy();
    await new Promise((resolve) => leg.raw.once('close', resolve));
    let reused: [net.Socket, net.Socket] | undefined;
    for (let i = 0; i < 20 && reused === undefined; i++) {
      const candidate = await pair();
      if (candidate.map(descriptorOf).includes(fd)) reused = candidate;
    }
    expect(reused).toBeDefined();
    const received: Buffer[] = [];
    for (const s of reused ?? []) s.on('data', (d: Buffer) => received.push(d));
    server.write('more from the old peer');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toEqual([]);
  });
});

/** The addon's legs, raw (the ids it hands out). */
function rawLegs(): TlsLegAddon {
  const legs = nativeAddon()?.tls;
  if (legs === undefined) throw new Error('npm run build:native');
  return legs;
}

/** A leg started straight on the addon (no handshake needed): its id. */
async function rawLeg(legs: TlsLegAddon): Promise<number> {
  const [, far] = await pair();
  stopReading(far);
  return legs.start(descriptorOf(far), serverContext.native, null, null, () => undefined);
}

/** Settles like `promise`, or rejects after `ms` (a hang becomes a failure with a reason). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms),
    ),
  ]);
}

describe('native TLS leg ids', () => {
  it('never name another leg: a stale id does not match the leg in its slot 2^20 reuses later', async () => {
    const legs = rawLegs();
    const stale = await rawLeg(legs);
    expect(legs.stop(stale)).toBe(true);
    // The stop moved the slot's generation on once; 2^20 - 1 more legs use the slot and end
    // (a 20-bit generation is then back where it was).
    const next = legs.testOnlyAdvanceGeneration(stale, 2 ** 20 - 1);
    const fresh = await rawLeg(legs);
    expect(fresh).toBe(next); // the new leg took the stale id's slot
    expect(fresh).not.toBe(stale);
    expect(legs.stop(stale)).toBe(false);
    expect(legs.idleMs(stale)).toBe(-1);
    expect(legs.idleMs(fresh)).toBeGreaterThanOrEqual(0);
    expect(legs.stop(fresh)).toBe(true);
  });

  it('stay exact as JavaScript numbers up to the last generation, then the slot is retired', async () => {
    const legs = rawLegs();
    const first = await rawLeg(legs);
    legs.stop(first);
    const now = legs.testOnlyAdvanceGeneration(first, 0);
    expect(now).not.toBeNull();
    // Ids are generation * 2^21 + slot; move the slot to its last (32-bit) generation.
    const generation = Math.floor((now ?? 0) / 2 ** 21);
    const last = legs.testOnlyAdvanceGeneration(first, 2 ** 32 - 1 - generation);
    expect(last).toBe(Number.MAX_SAFE_INTEGER - (2 ** 21 - 1) + ((now ?? 0) % 2 ** 21));
    const oldest = await rawLeg(legs);
    expect(oldest).toBe(last);
    expect(Number.isSafeInteger(oldest)).toBe(true);
    expect(legs.idleMs(oldest)).toBeGreaterThanOrEqual(0);
    expect(legs.stop(oldest)).toBe(true);
    // Every generation of the slot was used: it is never used again.
    expect(() => legs.testOnlyAdvanceGeneration(oldest, 0)).toThrow(/in use or retired/);
    const after = await rawLeg(legs);
    expect([first, oldest]).not.toContain(after);
    expect(legs.stop(oldest)).toBe(false);
    expect(legs.stop(after)).toBe(true);
  });

  it('end a splice at once when its source leg is stopped', async () => {
    const trusted = nativeClientContext([ca.certificatePem]);
    const { upstream, leg } = await upstreamSide('leg.test', trusted, 'HEAD\r\n\r\npart');
    const { socket, client } = await sandboxSide();
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    expect((await upstream.read(true, 2000))?.toString()).toBe('HEAD\r\n\r\n');
    const spliced = socket.spliceFrom(leg, 1000);
    await until(() => Buffer.concat(received).toString() === 'part');
    leg.stop();
    await expect(within(spliced, 3000, 'the splice')).rejects.toThrow(/ended before the body/);
  });

  it("fail the source of a splice at once when its target is stopped (its rest is nobody's)", async () => {
    const trusted = nativeClientContext([ca.certificatePem]);
    const { upstream, leg } = await upstreamSide('leg.test', trusted, 'HEAD\r\n\r\npart');
    const { socket, client } = await sandboxSide();
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    expect((await upstream.read(true, 2000))?.toString()).toBe('HEAD\r\n\r\n');
    void socket.spliceFrom(leg, 1000).catch(() => undefined);
    await until(() => Buffer.concat(received).toString() === 'part');
    socket.leg.stop();
    await until(() => !leg.isRunning);
    await expect(upstream.read(false, 1000)).rejects.toThrow(/spliced into is gone/);
  });

  it("never splice another connection's plaintext in place of a stopped source's", async () => {
    const legs = rawLegs();
    const trusted = nativeClientContext([ca.certificatePem]);
    const source = await upstreamSide('leg.test', trusted, 'HEAD\r\n\r\npart');
    const { socket, client } = await sandboxSide();
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    expect((await source.upstream.read(true, 2000))?.toString()).toBe('HEAD\r\n\r\n');
    const spliced = socket.spliceFrom(source.leg, 1000);
    spliced.catch(() => undefined);
    await until(() => Buffer.concat(received).toString() === 'part');
    source.leg.stop();
    // Another connection takes the stopped leg's slot, 2^20 reuses later; its plaintext waits
    // in the leg (nobody reads it).
    const next = legs.testOnlyAdvanceGeneration(source.leg.id, 2 ** 20 - 1);
    const other = await upstreamSide('leg.test', trusted, 'SECRET of another connection');
    expect(other.leg.id).toBe(next);
    await other.upstream.secure;
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Anything that wakes the splice's target now (here the sandbox sending a byte) must not
    // make it take those bytes.
    if (!client.destroyed) client.write('x');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(Buffer.concat(received).toString()).not.toContain('SECRET');
    await expect(within(spliced, 3000, 'the splice')).rejects.toThrow(/ended before the body/);
  });
});
