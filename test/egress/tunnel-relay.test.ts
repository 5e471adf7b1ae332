import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  activeTunnelRelays,
  relayNatively,
  resumeReading,
  tunnelRelayStatus,
  takeUnread,
  type TunnelRelayEnd,
} from '../../src/egress/tunnel-relay.js';
import { collect, descriptorOf, sha, socketPair, until } from './support/sockets.js';

interface Relayed {
  client: net.Socket;
  upstream: net.Socket;
  clientEnd: net.Socket;
  upstreamEnd: net.Socket;
  ended: Promise<TunnelRelayEnd>;
}

const opened: net.Socket[] = [];

/** The four sockets of a tunnel, closed after each test: client ⇄ clientEnd, upstreamEnd ⇄ upstream. */
async function sockets() {
  const [client, clientEnd] = await socketPair();
  const [upstreamEnd, upstream] = await socketPair();
  opened.push(client, clientEnd, upstream, upstreamEnd);
  for (const s of [client, clientEnd, upstream, upstreamEnd]) s.on('error', () => undefined);
  return { client, clientEnd, upstreamEnd, upstream };
}

/** client ⇄ [clientEnd ⇄ relay ⇄ upstreamEnd] ⇄ upstream */
async function relayed(idleMs = 60_000, before?: (clientEnd: net.Socket) => Buffer[]) {
  const { client, clientEnd, upstreamEnd, upstream } = await sockets();
  const first = before?.(clientEnd) ?? [];
  if (first.length > 0)
    await new Promise<void>((resolve) => upstreamEnd.write(Buffer.concat(first), () => resolve()));
  upstreamEnd.pause();
  let settle!: (end: TunnelRelayEnd) => void;
  const ended = new Promise<TunnelRelayEnd>((resolve) => (settle = resolve));
  expect(relayNatively(clientEnd, upstreamEnd, idleMs, settle)).toBe(true);
  return { client, upstream, clientEnd, upstreamEnd, ended } satisfies Relayed;
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
    expect(r.clientEnd.destroyed && r.upstreamEnd.destroyed).toBe(true);
  });

  it('forwards what Node already read before the hand-off first, in order', async () => {
    const { client, clientEnd, upstreamEnd, upstream } = await sockets();
    // Node reads these into clientEnd's stream buffer while it is paused.
    clientEnd.pause();
    client.write('first-');
    await until(() => clientEnd.readableLength > 0);
    const atUpstream = collect(upstream);
    const unread = takeUnread(clientEnd);
    expect(Buffer.concat(unread).toString()).toBe('first-');
    // Sent after Node stopped reading: must arrive after the unread bytes, through the relay.
    client.write('second');
    await new Promise<void>((resolve) => upstreamEnd.write(Buffer.concat(unread), () => resolve()));
    upstreamEnd.pause();
    expect(relayNatively(clientEnd, upstreamEnd, 60_000)).toBe(true);
    client.end();
    expect((await atUpstream).toString()).toBe('first-second');
  });

  it('refuses a socket with unread bytes and changes nothing (the caller relays with streams)', async () => {
    const { client, clientEnd, upstreamEnd } = await sockets();
    clientEnd.pause();
    client.write('unread');
    await until(() => clientEnd.readableLength > 0);
    expect(relayNatively(clientEnd, upstreamEnd, 60_000)).toBe(false);
    expect(activeTunnelRelays()).toBe(0);
    expect((clientEnd.read() as Buffer).toString()).toBe('unread');
  });

  it('a socket the relay did not take reads again after takeUnread (the streams fallback)', async () => {
    const { client, clientEnd, upstreamEnd, upstream } = await sockets();
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

  it('stops at once when a socket is destroyed, and closes the other side', async () => {
    const r = await relayed();
    expect(activeTunnelRelays()).toBe(1);
    const upstreamClosed = new Promise((resolve) => r.upstream.once('end', resolve));
    r.upstream.resume();
    r.clientEnd.destroy();
    // Synchronous: the relay thread let go of both descriptors before destroy() returned.
    expect(activeTunnelRelays()).toBe(0);
    r.upstreamEnd.destroy();
    await upstreamClosed;
  });

  it('never writes tunnel bytes into a descriptor number reused after a stop', async () => {
    const r = await relayed();
    const fd = descriptorOf(r.clientEnd);
    r.clientEnd.destroy();
    r.upstreamEnd.removeAllListeners('close');
    await new Promise((resolve) => r.clientEnd.once('close', resolve));
    // Open connections until one gets the old descriptor number back.
    let reused: [net.Socket, net.Socket] | undefined;
    for (let i = 0; i < 20 && reused === undefined; i++) {
      const pair = await socketPair();
      opened.push(...pair);
      const fds = pair.map(descriptorOf);
      if (fds.includes(fd)) reused = pair;
    }
    expect(reused).toBeDefined();
    const received: Buffer[] = [];
    for (const s of reused ?? []) s.on('data', (d: Buffer) => received.push(d));
    // The upstream keeps sending towards the old tunnel.
    r.upstream.write(randomBytes(64 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toEqual([]);
  });

  it('ends a relay that moved nothing for its idle time', async () => {
    const r = await relayed(1000);
    const clientClosed = new Promise((resolve) => r.client.once('end', resolve));
    r.client.resume();
    const started = Date.now();
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
