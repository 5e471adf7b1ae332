import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { BerthError } from '../../src/errors/berth-error.js';

/**
 * The engine's "no space left on device" (a full disk during a commit) becomes a clear
 * `disk_full` error. A full disk cannot be made on the real engine without filling the host's, so
 * a stand-in engine on a Unix socket answers the commit the way dockerd does when its disk is full.
 */

let dir: string;
let server: Server;
const requests: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-nospace-'));
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url?.split('?')[0]}`);
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        message: 'write /var/lib/docker/overlay2/3f1c/diff/workspace/big: no space left on device',
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(join(dir, 'docker.sock'), resolve));
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('a full disk under the engine', () => {
  it('is reported as disk_full, naming what could not be done', async () => {
    const runtime = new DockerRuntime({ socketPath: join(dir, 'docker.sock'), instance: 't' });
    const error = await runtime
      .commit('abc123', { repository: 'berth-cache', tag: 't', labels: {} })
      .catch((e: unknown) => e);
    expect(requests).toEqual(['POST /v1.41/commit']);
    expect(error).toBeInstanceOf(BerthError);
    expect((error as BerthError).code).toBe('disk_full');
    expect((error as BerthError).message).toBe(
      "could not commit sandbox abc123: the Docker engine's disk is full (no space left on device)",
    );
    expect((error as BerthError).details.engineMessage).toContain('no space left on device');
  });
});
