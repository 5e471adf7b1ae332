import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { machineAddresses } from '../../src/egress/machine-addresses.js';
import { bundleRemoteRepository } from '../../src/lifecycle/checkout.js';
import {
  countConnections,
  countConnectionsAround,
  failure,
  redirectToLoopback,
} from '../support/connection-counter.js';
import { GitHttpServer } from '../support/git-http-server.js';

/**
 * The checkout's host-side fetch of an https, http or git:// repository with the environment's
 * credentials (bundleRemoteRepository) connects only to an address the server's policy allows,
 * as the ssh fetch does (http-target.ts): a token holder's URL naming loopback, a private range
 * or the machine's own address made the host connect there, and a 302 was followed to another
 * port with the token (review 2, finding A2). Real listeners count what git sends.
 */

const TOKEN = 'SECRET-TOKEN-4411';
const credentials = { username: 'x-access-token', password: TOKEN };

describe("the checkout's host-side fetch of a remote repository", () => {
  const loopback = countConnectionsAround();

  it('does not connect to a loopback address, literal or by name, unless allowed', async () => {
    for (const url of [
      `http://127.0.0.1:${loopback.port}/r.git`,
      `https://localhost:${loopback.port}/r.git`,
      `http://[::ffff:127.0.0.1]:${loopback.port}/r.git`,
      `git://127.0.0.1:${loopback.port}/r.git`,
    ]) {
      const message = await failure(bundleRemoteRepository(url, credentials));
      expect(message).toContain(`could not fetch the repository ${url} on the host`);
      expect(message).toContain('BERTH_SETUP_ALLOW');
      expect(message).not.toContain(TOKEN);
    }
    expect(loopback.count()).toBe(0);

    // Allowed by the operator: git connects (to the vetted address; no git server: it fails).
    const allowed = await failure(
      bundleRemoteRepository(`http://localhost:${loopback.port}/r.git`, credentials, {
        addressPolicy: { allow: ['127.0.0.1/32'] },
      }),
    );
    expect(allowed).toContain('could not fetch the repository');
    expect(loopback.count()).toBe(1);
  });

  it("does not connect to one of this machine's own addresses, even inside an allowed range", async () => {
    const own = machineAddresses().find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)) ?? '';
    const listener = await countConnections(own);
    try {
      const message = await failure(
        bundleRemoteRepository(`http://${own}:${listener.port}/r.git`, credentials, {
          addressPolicy: { allow: [`${own}/32`] },
        }),
      );
      expect(message).toContain("one of this machine's own addresses");
      expect(listener.count()).toBe(0);
    } finally {
      await listener.close();
    }
  });

  it('follows no redirect, so the token never goes to another address or port', async () => {
    const { seen, redirectPort: port, close } = await redirectToLoopback();
    try {
      const message = await failure(
        bundleRemoteRepository(`http://localhost:${port}/r.git`, credentials, {
          addressPolicy: { allow: ['127.0.0.1/32'] },
        }),
      );
      expect(message).toContain('could not fetch the repository');
      expect(seen).toEqual([]);
    } finally {
      await close();
    }
  });

  it('still fetches with the token from an allowed address', async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-fetch-allowed-'));
    const work = join(root, 'work');
    const git = (...args: string[]) =>
      execFileSync('git', args, {
        cwd: work,
        env: {
          ...process.env,
          GIT_AUTHOR_NAME: 't',
          GIT_AUTHOR_EMAIL: 't@localhost',
          GIT_COMMITTER_NAME: 't',
          GIT_COMMITTER_EMAIL: 't@localhost',
        },
      });
    execFileSync('git', ['init', '-q', '-b', 'main', work]);
    git('commit', '-q', '--allow-empty', '-m', 'one');
    execFileSync('git', ['clone', '-q', '--bare', work, join(root, 'app.git')]);
    const server = new GitHttpServer(root, credentials.username, TOKEN);
    await server.start();
    try {
      const url = server.url('app.git');
      expect(await failure(bundleRemoteRepository(url, credentials))).toContain(
        'BERTH_SETUP_ALLOW',
      );
      const bundle = await bundleRemoteRepository(url, credentials, {
        addressPolicy: { allow: ['127.0.0.1/32'] },
      });
      expect(bundle.subarray(0, 20).toString('latin1')).toMatch(/^# v[23] git bundle/);
    } finally {
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
