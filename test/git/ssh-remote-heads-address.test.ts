import { createServer, type Server } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { machineAddresses } from '../../src/egress/machine-addresses.js';
import { readRepositoryHeads } from '../../src/git/remote-heads.js';

/**
 * An ssh repository's address is vetted before the server's host asks it for its default branch
 * (issue 20 review): an IP literal or a name resolving to loopback, a private or link-local range
 * or one of this machine's own addresses is refused unless the operator allows the range
 * (BERTH_SETUP_ALLOW), and the machine's own addresses are refused even then. A real TCP listener
 * counts the connections the server's ssh makes (an ssh client connects before any key is used).
 */

const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n';

interface Listener {
  port: number;
  connections: () => number;
  close: () => Promise<void>;
}

async function listen(host: string): Promise<Listener> {
  let count = 0;
  const server: Server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    connections: () => count,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const ask = (url: string, extra: { allow?: string[]; anyHost?: boolean } = {}) =>
  readRepositoryHeads(url, {
    credentials: { username: 'git', password: KEY },
    ssh: { knownHostsFile: undefined, anyHost: extra.anyHost },
    ...(extra.allow ? { allow: extra.allow } : {}),
  });

describe("an ssh repository's address", () => {
  let loopback: Listener;
  beforeEach(async () => {
    loopback = await listen('127.0.0.1');
  });
  afterEach(async () => {
    await loopback.close();
  });

  it('is not asked at a loopback IP literal, when written or at an attempt start', async () => {
    expect(await ask(`ssh://git@127.0.0.1:${loopback.port}/r`)).toBeUndefined();
    expect(await ask(`ssh://git@127.0.0.1:${loopback.port}/r`, { anyHost: true })).toBeUndefined();
    expect(await ask(`ssh://git@[::ffff:127.0.0.1]:${loopback.port}/r`)).toBeUndefined();
    expect(loopback.connections()).toBe(0);
  });

  it('is not asked at a name resolving to loopback at an attempt start (localhost)', async () => {
    expect(await ask(`ssh://git@localhost:${loopback.port}/r`, { anyHost: true })).toBeUndefined();
    expect(loopback.connections()).toBe(0);
  });

  it("is not asked at one of this machine's own addresses, even inside an allowed range", async () => {
    const own = machineAddresses().find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
    expect(own, 'this machine has an IPv4 address besides loopback').toBeDefined();
    const listener = await listen(own ?? '');
    try {
      const url = `ssh://git@${own}:${listener.port}/r`;
      expect(await ask(url, { allow: [`${own}/32`] })).toBeUndefined();
      expect(await ask(url, { allow: [`${own}/32`], anyHost: true })).toBeUndefined();
      expect(listener.connections()).toBe(0);
    } finally {
      await listener.close();
    }
  });

  it("an https repository is not asked at one of this machine's own addresses either", async () => {
    const own = machineAddresses().find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
    const listener = await listen(own ?? '');
    try {
      const heads = await readRepositoryHeads(`http://${own}:${listener.port}/r.git`, {
        allow: [`${own}/32`],
      });
      expect(heads).toBeUndefined();
      expect(listener.connections()).toBe(0);
    } finally {
      await listener.close();
    }
  });

  it('is asked at an address the operator allows, a name connected at its vetted address', async () => {
    // Not a real sshd: the connection is counted and dropped, so there is no answer.
    expect(
      await ask(`ssh://git@127.0.0.1:${loopback.port}/r`, { allow: ['127.0.0.1/32'] }),
    ).toBeUndefined();
    expect(loopback.connections()).toBe(1);
    // localhost resolves to ::1 and 127.0.0.1 here; only the allowed one is dialled.
    expect(
      await ask(`ssh://git@localhost:${loopback.port}/r`, {
        allow: ['127.0.0.1/32'],
        anyHost: true,
      }),
    ).toBeUndefined();
    expect(loopback.connections()).toBe(2);
  });
});
