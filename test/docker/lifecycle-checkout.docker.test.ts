import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import {
  checkoutRef,
  cloneRepository,
  type CheckoutContext,
} from '../../src/lifecycle/checkout.js';
import { GitHttpServer } from '../support/git-http-server.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Checkout of a private repository over HTTP with credentials: a git server (git http-backend
 * behind Basic authentication) on the test network's gateway address, on this machine. The
 * credentials must reach git and nothing else: not .git/config, not a file, not the container.
 */

const USER = 'bot';
const TOKEN = 'tok-9f8e7d6c5b4a';
const instance = `lcco-${process.pid}`;
let repo: ReturnType<typeof makeSampleRepository>;
let root: string;
let server: GitHttpServer;
/** The same repositories on loopback: the host-side fetch's (the gateway is this machine's own). */
let hostServer: GitHttpServer;
let hostUrl = '';
let runtime: DockerRuntime;
const network = `berth-lcco-${process.pid}`;
let sandboxId = '';
let url = '';

beforeAll(async () => {
  const image = lifecycleTestImage();
  repo = makeSampleRepository();
  root = mkdtempSync(join(tmpdir(), 'berth-git-http-'));
  execFileSync('git', ['clone', '-q', '--bare', repo.dir, join(root, 'app.git')]);
  runtime = new DockerRuntime({ instance });
  const net = await runtime.createNetwork({ name: network, internal: false, labels: {} });
  if (net.gateway === undefined) throw new Error('the test network has no gateway address');
  server = new GitHttpServer(root, USER, TOKEN);
  await server.start(net.gateway);
  url = server.url('app.git').replace('http://', `http://${USER}:${TOKEN}@`);
  hostServer = new GitHttpServer(root, USER, TOKEN);
  await hostServer.start('127.0.0.1');
  hostUrl = hostServer.url('app.git').replace('http://', `http://${USER}:${TOKEN}@`);
  const sandbox = await runtime.create({
    image,
    labels: {},
    resources: { cpus: 1, memoryMb: 256, pids: 128 },
    network,
    workdir: '/workspace',
  });
  sandboxId = sandbox.id;
  await runtime.start(sandboxId);
});

afterAll(async () => {
  if (sandboxId !== '') await runtime.remove(sandboxId);
  await runtime.removeNetwork(network).catch(() => undefined);
  await server.stop();
  await hostServer.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('checkout of a private repository', () => {
  it('clones and fetches with credentials that are left nowhere in the sandbox', async () => {
    const ctx: CheckoutContext = {
      runtime,
      sandboxId,
      workdir: '/workspace',
      repository: url,
      defaultBranch: 'main',
      allowLocalRepositories: false,
    };
    expect((await cloneRepository(ctx)).commit).toBe(repo.mainCommit);
    // The later fetches run on the host, which connects to no address of its own (the gateway)
    // and to loopback only where the operator allows it (BERTH_SETUP_ALLOW).
    await expect(checkoutRef(ctx, { branch: 'feature' })).rejects.toThrow(
      /one of this machine's own addresses/,
    );
    const onHost = { ...ctx, repository: hostUrl, addressPolicy: { allow: ['127.0.0.1/32'] } };
    expect((await checkoutRef(onHost, { branch: 'feature' })).commit).toBe(repo.featureCommit);
    expect((await checkoutRef(onHost, { sha: repo.mainCommit })).commit).toBe(repo.mainCommit);
    expect(server.seen.authorized).toBeGreaterThan(0);
    expect(hostServer.seen.authorized).toBeGreaterThan(0);

    const sh = async (script: string) =>
      (await runtime.exec(sandboxId, { script, workdir: '/workspace' })).stdout;
    expect((await sh('git remote get-url origin')).trim()).toBe(
      url.replace(`${USER}:${TOKEN}@`, ''),
    );
    expect(
      await sh(
        `grep -rlsF -- "$(printf '%s' tok-9f8e; printf '%s' 7d6c5b4a)" /workspace /root /etc /tmp /var/lib/berth || true`,
      ),
    ).toBe('');
    expect(await sh('cat /proc/1/environ | tr "\\0" "\\n" | grep -c BERTH_GIT || true')).toBe(
      '0\n',
    );
    const inspect = execFileSync('docker', ['inspect', sandboxId], { encoding: 'utf8' });
    expect(inspect).not.toContain(TOKEN);
  });

  it('fails clearly without the credentials, and on a commit that does not exist', async () => {
    const ctx: CheckoutContext = {
      runtime,
      sandboxId,
      workdir: '/workspace',
      repository: url,
      defaultBranch: 'main',
      allowLocalRepositories: false,
    };
    await expect(
      checkoutRef(
        { ...ctx, repository: hostUrl, addressPolicy: { allow: ['127.0.0.1/32'] } },
        { sha: 'f'.repeat(40) },
      ),
    ).rejects.toThrow(/does not exist/);
    const refusedBefore = server.seen.refused;
    await expect(
      checkoutRef(
        { ...ctx, repository: url.replace(`${USER}:${TOKEN}@`, '') },
        { branch: 'feature' },
      ),
    ).rejects.toThrow(/could not fetch the branch "feature"/);
    expect(server.seen.refused).toBeGreaterThan(refusedBefore);
  });
});
