import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';

/** With no Docker engine, the server still serves, and a task fails with the engine's reason. */

let server: ServeHandle;
let auth: string[];

beforeAll(async () => {
  server = await startServe(['--allow-local-repos'], {
    BERTH_DOCKER_SOCKET: '/nonexistent/docker.sock',
  });
  auth = ['--url', server.url, '--token', server.adminToken];
});

afterAll(async () => {
  await server?.stop();
});

describe('the Docker engine unavailable', () => {
  it('fails a task with a clear reason instead of hanging', async () => {
    const file = join(tempDir('engine-down'), 'env.yaml');
    writeFileSync(file, 'name: down\nrepository: /srv/repos/down\nimage: minimal\n');
    expect((await runBerth(['env', 'create', '--file', file, ...auth])).code).toBe(0);
    const r = await runBerth([
      'exec',
      '--env',
      'down',
      '--command',
      'true',
      '--wait',
      '--json',
      ...auth,
    ]);
    expect(r.code).toBe(1);
    const task = JSON.parse(r.stdout) as {
      status: string;
      attempts: Array<{ error: string | null }>;
    };
    expect(task.status).toBe('failed');
    expect(task.attempts[0]?.error).toMatch(/Docker engine is not reachable/);
  });
});
