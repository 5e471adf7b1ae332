import { describe, expect, it } from 'vitest';
import { machineAddresses } from '../../src/egress/machine-addresses.js';
import { bundleSshRepository } from '../../src/lifecycle/checkout.js';
import {
  countConnections,
  countConnectionsAround,
  failure,
} from '../support/connection-counter.js';

/**
 * The checkout's own ssh fetch on the server's host (bundleSshRepository) connects only to an
 * address the server's policy allows, as the default-branch lookup does (ssh-target.ts): a
 * token holder's ssh URL naming loopback, a private range or the machine's own address made the
 * host connect there (ssh's refusals and banners answer a port scan). Real listeners count the
 * connections ssh makes.
 */

const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n';

describe("the checkout's ssh fetch", () => {
  const loopback = countConnectionsAround();

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
    const listener = await countConnections(own);
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
      await listener.close();
    }
  });
});
