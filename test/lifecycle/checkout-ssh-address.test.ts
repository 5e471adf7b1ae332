import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineAddresses } from '../../src/egress/machine-addresses.js';
import { bundleSshRepository } from '../../src/lifecycle/checkout.js';

/**
 * The checkout's own ssh fetch on the server's host (bundleSshRepository) connects only to an
 * address the server's policy allows, as the default-branch lookup does (ssh-target.ts): a
 * token holder's ssh URL naming loopback, a private range or the machine's own address made the
 * host connect there (ssh's refusals and banners answer a port scan). Real listeners count the
 * connections ssh makes.
 */

const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n';

async function listen(
  host: string,
): Promise<{ server: Server; port: number; count: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const address = server.address();
  return {
    server,
    port: typeof address === 'object' && address ? address.port : 0,
    count: () => count,
  };
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => 'no failure',
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );

describe("the checkout's ssh fetch", () => {
  let loopback: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    loopback = await listen('127.0.0.1');
  });
  afterAll(async () => {
    await new Promise((resolve) => loopback.server.close(resolve));
  });

  it('does not connect to a loopback address, literal or by name, unless allowed', async () => {
    const credentials = { username: 'git', password: KEY };
    for (const url of [
      `ssh://git@127.0.0.1:${loopback.port}/r`,
      `ssh://git@localhost:${loopback.port}/r`,
      `ssh://git@[::ffff:127.0.0.1]:${loopback.port}/r`,
    ]) {
      const message = await failure(bundleSshRepository(url, { credentials }));
      expect(message).toContain(`could not fetch the ssh repository ${url} on the host`);
      expect(message).toContain('BERTH_SETUP_ALLOW');
      expect(message).not.toContain('PRIVATE KEY');
    }
    expect(loopback.count()).toBe(0);

    // Allowed by the operator: ssh connects (to the vetted address; no sshd here, so it fails).
    const allowed = await failure(
      bundleSshRepository(`ssh://git@localhost:${loopback.port}/r`, {
        credentials,
        addressPolicy: { allow: ['127.0.0.1/32'] },
      }),
    );
    expect(allowed).toContain('could not fetch the ssh repository');
    expect(loopback.count()).toBe(1);
  });

  it("does not connect to one of this machine's own addresses, even inside an allowed range", async () => {
    const own = machineAddresses().find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)) ?? '';
    const listener = await listen(own);
    try {
      const message = await failure(
        bundleSshRepository(`ssh://git@${own}:${listener.port}/r`, {
          credentials: { username: 'git', password: KEY },
          addressPolicy: { allow: [`${own}/32`] },
        }),
      );
      expect(message).toContain("one of this machine's own addresses");
      expect(listener.count()).toBe(0);
    } finally {
      await new Promise((resolve) => listener.server.close(resolve));
    }
  });
});
