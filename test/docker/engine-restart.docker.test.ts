import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { testImage } from './runtime-test-image.js';

/**
 * The engine going away and coming back, without restarting the shared engine (that would kill
 * every other sandbox on this machine): the runtime talks to the engine through a unix-socket
 * relay that this test stops (all connections cut, the socket gone) and starts again.
 */
class SocketRelay {
  private server: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();
  constructor(
    readonly socketPath: string,
    private readonly target: string,
  ) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      this.connections.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.connections.delete(client);
        this.connections.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(this.socketPath, resolve));
  }

  async stop(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('engine unreachable, then back', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('fails clearly while the engine is away and works again on the next call', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-relay-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const relay = new SocketRelay(path.join(dir, 'docker.sock'), '/var/run/docker.sock');
    await relay.start();
    cleanup.push(() => relay.stop());
    const runtime = new DockerRuntime({
      instance: `relay-${randomBytes(3).toString('hex')}`,
      socketPath: relay.socketPath,
    });

    const sandbox = await runtime.create({
      image: await testImage(),
      labels: {},
      resources: { cpus: 1, memoryMb: 128, pids: 64 },
    });
    cleanup.push(() => new DockerRuntime({ instance: 'cleanup' }).remove(sandbox.id));
    await runtime.start(sandbox.id);
    expect((await runtime.exec(sandbox.id, { script: 'echo one' })).stdout).toBe('one\n');

    // The engine goes away while a command runs on the open exec channel.
    const running = runtime.exec(sandbox.id, { script: 'sleep 30' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    await relay.stop();
    const error = await running;
    expect(error).toMatchObject({ code: 'runtime_unavailable' });
    await expect(runtime.info()).rejects.toMatchObject({ code: 'runtime_unavailable' });
    await expect(runtime.exec(sandbox.id, { argv: ['true'] })).rejects.toMatchObject({
      code: 'runtime_unavailable',
    });

    // Back: the next calls work without making a new runtime object.
    await relay.start();
    expect((await runtime.info()).apiVersion).toBe('1.41');
    expect((await runtime.exec(sandbox.id, { script: 'echo two' })).stdout).toBe('two\n');
    await runtime.remove(sandbox.id);
  });
});
