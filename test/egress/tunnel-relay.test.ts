import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  activeTunnelRelays,
  nativeAddon,
  relayConnecting,
  stopReading,
  resumeReading,
  tunnelRelayStatus,
  takeUnread,
  type TunnelRelayEnd,
} from '../../src/egress/tunnel-relay.js';
import { collect, descriptorOf, sha, socketPair, until } from './support/sockets.js';

interface Relayed {
  client: net.Socket;
  clientEnd: net.Socket;
  upstream: net.Socket;
  ended: Promise<TunnelRelayEnd>;
}

const opened: Array<{ destroy(): void }> = [];

/** A client ⇄ clientEnd pair and a listener for the relay to connect to, closed after each test. */
async function sockets() {
  const [client, clientEnd] = await socketPair();
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  opened.push(client, clientEnd, { destroy: () => server.close() });
  for (const s of [client, clientEnd]) s.on('error', () => undefined);
  const target = { address: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
  const upstream = async () => {
    const socket = await accepted;
    socket.on('error', () => undefined);
    opened.push(socket);
    return socket;
  };
  return { client, clientEnd, target, upstream };
}

/** client ⇄ [clientEnd ⇄ relay ⇄ its own connection] ⇄ upstream */
async function relayed(idleMs = 60_000, initial = Buffer.alloc(0)): Promise<Relayed> {
  const { client, clientEnd, target, upstream } = await sockets();
  let settle!: (end: TunnelRelayEnd) => void;
  const ended = new Promise<TunnelRelayEnd>((resolve) => (settle = resolve));
  expect(relayConnecting(clientEnd, target, initial, { idleMs, connectMs: 5000 }, settle)).toBe(
    true,
  );
  return { client, clientEnd, upstream: await upstream(), ended };
}

afterEach(async () => {
  for (const s of opened.splice(0)) s.destroy();
  // Every relay a test started is gone once its sockets are.
  await until(() => activeTunnelRelays() === 0);
});

describe('native tunnel relay', () => {
  it('is built and loads (npm run build:native; setup.sh builds it)', () => {
    expect(tunnelRelayStatus()).toEqual({ available: true });
  });

  it('moves 16 MB each way at once, byte for byte, and keeps half-close', async () => {
    const r = await relayed();
    const up = randomBytes(16 * 1024 * 1024);
    const down = randomBytes(16 * 1024 * 1024);
    const atUpstream = collect(r.upstream);
    const atClient = collect(r.client);
    r.client.end(up);
    // The client's end arrives as the upstream's end, while the upstream can still answer.
    const received = await atUpstream;
    expect(sha(received)).toBe(sha(up));
    r.upstream.end(down);
    expect(sha(await atClient)).toBe(sha(down));
    expect(await r.ended).toMatchObject({
      reason: 'end',
      fromClient: up.length,
      fromUpstream: down.length,
    });
    expect(r.clientEnd.destroyed).toBe(true);
  });

  it('sends the initial bytes first, then what Node had read, then the rest, in order', async () => {
    const { client, clientEnd, target, upstream } = await sockets();
    // Node reads these into clientEnd's stream buffer while it is paused.
    clientEnd.pause();
    client.write('first-');
    await until(() => clientEnd.readableLength > 0);
    const unread = takeUnread(clientEnd);
    expect(Buffer.concat(unread).toString()).toBe('first-');
    const initial = Buffer.concat([Buffer.from('hello-'), ...unread]);
    expect(relayConnecting(clientEnd, target, initial, { idleMs: 60_000, connectMs: 5000 })).toBe(
      true,
    );
    const atUpstream = collect(await upstream());
    // Sent after Node stopped reading: must arrive after the others, through the relay.
    client.write('second');
    client.end();
    expect((await atUpstream).toString()).toBe('hello-first-second');
  });

  it('ends with an error and closes the client when the upstream refuses the connection', async () => {
    const { client, clientEnd } = await sockets();
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as net.AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    let settle!: (end: TunnelRelayEnd) => void;
    const ended = new Promise<TunnelRelayEnd>((resolve) => (settle = resolve));
    const clientClosed = new Promise((resolve) => client.once('end', resolve));
    client.resume();
    expect(
      relayConnecting(
        clientEnd,
        { address: '127.0.0.1', port },
        Buffer.from('hello'),
        { idleMs: 60_000, connectMs: 5000 },
        settle,
      ),
    ).toBe(true);
    expect(await ended).toMatchObject({ reason: 'error', errno: 111 }); // ECONNREFUSED
    await clientClosed;
  });

  it('ends a relay whose upstream connect does not complete in time', async () => {
    // A listener that never accepts, its queue filled first: further connects hang (SYNs are
    // dropped), all on loopback.
    const listener = spawn('python3', [
      '-c',
      'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)',
    ]);
    opened.push({ destroy: () => listener.kill() });
    const port = Number(
      await new Promise<string>((resolve) =>
        listener.stdout.once('data', (d: Buffer) => resolve(d.toString())),
      ),
    );
    for (let i = 0; i < 3; i++) {
      const filler = net.connect(port, '127.0.0.1');
      filler.on('error', () => undefined);
      opened.push(filler);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    const { clientEnd } = await sockets();
    let settle!: (end: TunnelRelayEnd) => void;
    const ended = new Promise<TunnelRelayEnd>((resolve) => (settle = resolve));
    const started = Date.now();
    const timeouts = { idleMs: 60_000, connectMs: 1000 };
    const target = { address: '127.0.0.1', port };
    expect(relayConnecting(clientEnd, target, Buffer.from('hello'), timeouts, settle)).toBe(true);
    expect(await ended).toMatchObject({ reason: 'error', errno: 110 }); // ETIMEDOUT
    // The relay thread sweeps once a second: between the timeout and two seconds later.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(Date.now() - started).toBeLessThan(3500);
    expect(clientEnd.destroyed).toBe(true);
  });

  it('refuses an address that is not an IP literal, changing nothing', async () => {
    const { clientEnd } = await sockets();
    const timeouts = { idleMs: 60_000, connectMs: 5000 };
    const target = { address: 'localhost', port: 443 };
    expect(relayConnecting(clientEnd, target, Buffer.alloc(0), timeouts)).toBe(false);
    expect(activeTunnelRelays()).toBe(0);
    expect(clientEnd.destroyed).toBe(false);
  });

  it('refuses a socket with unread bytes and changes nothing (the caller relays with streams)', async () => {
    const { client, clientEnd, target } = await sockets();
    clientEnd.pause();
    client.write('unread');
    await until(() => clientEnd.readableLength > 0);
    const timeouts = { idleMs: 60_000, connectMs: 5000 };
    expect(relayConnecting(clientEnd, target, Buffer.alloc(0), timeouts)).toBe(false);
    expect(activeTunnelRelays()).toBe(0);
    expect((clientEnd.read() as Buffer).toString()).toBe('unread');
  });

  it('a socket the relay did not take reads again after takeUnread (the streams fallback)', async () => {
    const [client, clientEnd] = await socketPair();
    const [upstreamEnd, upstream] = await socketPair();
    opened.push(client, clientEnd, upstreamEnd, upstream);
    // As the proxy does: Node's stream asked for a read, then reading stopped and the relay
    // was not used; without resumeReading the stream waits for that read forever.
    clientEnd.resume();
    expect(takeUnread(clientEnd)).toEqual([]);
    resumeReading(clientEnd);
    clientEnd.pipe(upstreamEnd);
    const received = new Promise<string>((resolve) => {
      let text = '';
      upstream.on('data', (d: Buffer) => {
        text += d.toString();
        if (text === 'still works') resolve(text);
      });
    });
    client.write('still works');
    expect(await received).toBe('still works');
    expect(activeTunnelRelays()).toBe(0);
  });

  it('stops at once when the client socket is destroyed, and closes its own connection', async () => {
    const r = await relayed();
    expect(activeTunnelRelays()).toBe(1);
    const upstreamClosed = new Promise((resolve) => r.upstream.once('end', resolve));
    r.upstream.resume();
    r.clientEnd.destroy();
    // Synchronous: the relay thread let go of both descriptors before destroy() returned.
    expect(activeTunnelRelays()).toBe(0);
    await upstreamClosed;
  });

  it('never writes tunnel bytes into a descriptor number reused after a stop', async () => {
    const r = await relayed();
    // A listener opened before the stop, so that only connections take the freed numbers.
    const accepted: net.Socket[] = [];
    const listener = net.createServer((socket) => {
      accepted.push(socket);
      opened.push(socket);
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    opened.push({ destroy: () => listener.close() });
    const { port } = listener.address() as net.AddressInfo;
    const fd = descriptorOf(r.clientEnd);
    r.clientEnd.destroy();
    await new Promise((resolve) => r.clientEnd.once('close', resolve));
    // Open connections until one end gets the old descriptor number back.
    let reused: net.Socket | undefined;
    for (let i = 0; i < 20 && reused === undefined; i++) {
      const candidate = net.connect(port, '127.0.0.1');
      opened.push(candidate);
      await new Promise((resolve) => candidate.once('connect', resolve));
      await until(() => accepted.length === i + 1);
      reused = [candidate, accepted[i]].find((s) => s !== undefined && descriptorOf(s) === fd);
    }
    expect(reused).toBeDefined();
    const received: Buffer[] = [];
    reused?.on('data', (d: Buffer) => received.push(d));
    // The upstream keeps sending towards the old tunnel.
    r.upstream.write(randomBytes(64 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toEqual([]);
  });

  it('ends a relay that moved nothing for its idle time', async () => {
    // Taken before the relay starts: its idle time counts from its start.
    const started = Date.now();
    const r = await relayed(1000);
    const clientClosed = new Promise((resolve) => r.client.once('end', resolve));
    r.client.resume();
    const end = await r.ended;
    expect(end.reason).toBe('idle');
    // The relay thread sweeps once a second: between the idle time and two seconds later.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(Date.now() - started).toBeLessThan(3500);
    await clientClosed;
  });

  it('keeps an active relay alive past its idle time', async () => {
    const r = await relayed(1000);
    let ended = false;
    void r.ended.then(() => (ended = true));
    r.upstream.resume();
    for (let i = 0; i < 8; i++) {
      r.client.write('tick');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(ended).toBe(false);
  });

  it('reports an error when a peer resets the connection', async () => {
    const r = await relayed();
    r.upstream.resetAndDestroy();
    r.client.write('after the reset');
    const end = await r.ended;
    expect(['error', 'end']).toContain(end.reason);
    expect(r.clientEnd.destroyed).toBe(true);
  });
});

describe('native tunnel relay ids', () => {
  /** A relay started straight on the addon between two fresh socket pairs: its id. */
  async function rawRelay(): Promise<number> {
    const relay = nativeAddon();
    if (relay === undefined) throw new Error('npm run build:native');
    const [, a] = await socketPair();
    const [, b] = await socketPair();
    for (const s of [a, b]) {
      s.on('error', () => undefined);
      stopReading(s);
      opened.push(s);
    }
    return relay.start(descriptorOf(a), descriptorOf(b), 0, () => undefined);
  }

  it('never name another relay: stop() with a stale id does not stop the relay 2^20 reuses later', async () => {
    const relay = nativeAddon();
    if (relay === undefined) throw new Error('npm run build:native');
    const stale = await rawRelay();
    expect(relay.stop(stale)).toBe(true);
    const next = relay.testOnlyAdvanceGeneration(stale, 2 ** 20 - 1);
    const fresh = await rawRelay();
    expect(fresh).toBe(next); // the new relay took the stale id's slot
    expect(fresh).not.toBe(stale);
    expect(relay.stop(stale)).toBe(false);
    expect(activeTunnelRelays()).toBe(1);
    expect(relay.stop(fresh)).toBe(true);
  });

  it('stay exact as JavaScript numbers up to the last generation, then the slot is retired', async () => {
    const relay = nativeAddon();
    if (relay === undefined) throw new Error('npm run build:native');
    const first = await rawRelay();
    relay.stop(first);
    const now = relay.testOnlyAdvanceGeneration(first, 0) ?? 0;
    const generation = Math.floor(now / 2 ** 21);
    const last = relay.testOnlyAdvanceGeneration(first, 2 ** 32 - 1 - generation);
    expect(last).toBe(Number.MAX_SAFE_INTEGER - (2 ** 21 - 1) + (now % 2 ** 21));
    const oldest = await rawRelay();
    expect(oldest).toBe(last);
    expect(relay.stop(oldest)).toBe(true);
    expect(() => relay.testOnlyAdvanceGeneration(oldest, 0)).toThrow(/in use or retired/);
    const after = await rawRelay();
    expect([first, oldest]).not.toContain(after);
    expect(relay.stop(oldest)).toBe(false);
    expect(activeTunnelRelays()).toBe(1);
    expect(relay.stop(after)).toBe(true);
  });
});
