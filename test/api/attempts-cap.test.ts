/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerth } from '../support/cli.js';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * The attempts cap (`BERTH_MAX_ATTEMPTS`, default 8) through the CLI (`berth exec --attempts N`,
 * the real binary) and the API (`POST /v1/tasks`): 0 and more than the cap are refused with a
 * clear message (exit code 2, HTTP 400) and no task is stored. Only refusals are sent: nothing
 * runs, so the environment's repository is never fetched.
 */

const spec = {
  name: 'svc',
  repository: 'https://git.example/acme/svc.git',
  image: 'berth/minimal:latest',
};

let byDefault: TestServer;
let capped: TestServer;

beforeAll(async () => {
  byDefault = await startTestServer();
  capped = await startTestServer({ env: { BERTH_MAX_ATTEMPTS: '2' } });
  for (const server of [byDefault, capped]) {
    const created = await server.request('POST', '/v1/environments', { body: { spec } });
    expect(created.status, created.text).toBe(201);
  }
});

afterAll(async () => {
  await byDefault?.close();
  await capped?.close();
});

function exec(server: TestServer, attempts: string) {
  return runBerth([
    'exec',
    '--env',
    'svc',
    '--attempts',
    attempts,
    '--command',
    'true',
    '--url',
    server.url,
    '--token',
    server.adminToken,
  ]);
}

async function expectNoTask(server: TestServer): Promise<void> {
  const list = await server.request('GET', '/v1/tasks');
  expect(list.status, list.text).toBe(200);
  expect(list.json.tasks).toEqual([]);
}

describe('the attempts cap', () => {
  it('refuses --attempts 0 and --attempts 9 with the default cap of 8 (exit code 2)', async () => {
    const zero = await exec(byDefault, '0');
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('attempts must be a whole number from 1 to 8 (got 0;');

    const nine = await exec(byDefault, '9');
    expect(nine.code).toBe(2);
    expect(nine.stderr).toContain('attempts must be a whole number from 1 to 8 (got 9;');
    expect(nine.stderr).toContain('BERTH_MAX_ATTEMPTS');
    await expectNoTask(byDefault);
  });

  it('refuses 3 when BERTH_MAX_ATTEMPTS=2', async () => {
    const three = await exec(capped, '3');
    expect(three.code).toBe(2);
    expect(three.stderr).toContain('attempts must be a whole number from 1 to 2 (got 3;');
    await expectNoTask(capped);
  });

  it('refuses the same through the API with 400 invalid_input', async () => {
    const post = (server: TestServer, attempts: number) =>
      server.request('POST', '/v1/tasks', {
        body: { environment: 'svc', command: 'true', attempts },
      });
    const zero = await post(byDefault, 0);
    expect(zero.status, zero.text).toBe(400);
    expect(zero.json.code).toBe('invalid_input');
    expect(zero.json.message).toBe(
      "attempts must be a whole number from 1 to 8 (got 0; the server's cap is BERTH_MAX_ATTEMPTS)",
    );
    for (const [server, attempts, max] of [
      [byDefault, 9, 8],
      [capped, 3, 2],
    ] as const) {
      const response = await post(server, attempts);
      expect(response.status, response.text).toBe(400);
      expect(response.json.code).toBe('invalid_input');
      expect(response.json.message).toBe(
        `attempts must be a whole number from 1 to ${max} (got ${attempts}; the server's cap is BERTH_MAX_ATTEMPTS)`,
      );
    }
    await expectNoTask(byDefault);
    await expectNoTask(capped);
  });
});
