/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countConnections, type ConnectionCounter } from '../support/connection-counter.js';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * Through the API (issue 20 review): any token holder who writes an environment whose ssh
 * repository names a loopback address, with a key-shaped secret, made the server's host open a
 * TCP connection there (asking the default branch). A real listener on 127.0.0.1 counts them.
 */

const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n';

describe('an ssh repository on a loopback address', () => {
  let server: TestServer;
  let listener: ConnectionCounter;
  let port = 0;

  beforeAll(async () => {
    listener = await countConnections();
    port = listener.port;
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
    await listener.close();
  });

  it('is not connected to when an environment is created, validated or updated', async () => {
    const member = await server.createToken('writer');
    const spec = (url: string) => ({
      name: 'looped',
      repository: { url, credentials: { secret: 'REPO_KEY' } },
      secrets: ['REPO_KEY'],
    });
    const urls = [
      `ssh://git@127.0.0.1:${port}/r`,
      `ssh://git@[::ffff:127.0.0.1]:${port}/r`,
      `ssh://git@localhost:${port}/r`,
    ];
    const created = await server.request('POST', '/v1/environments', {
      token: member,
      body: { spec: spec(urls[0] ?? ''), secrets: { REPO_KEY: KEY } },
    });
    expect(created.status, created.text).toBe(201);
    // Not asked: the branch is assumed, not found.
    expect(created.json.spec.repository.defaultBranch).toBe('main');
    for (const url of urls) {
      const validated = await server.request('POST', '/v1/environments/validate', {
        token: member,
        body: { spec: spec(url), secrets: { REPO_KEY: KEY } },
      });
      expect(validated.status, validated.text).toBeLessThan(500);
      const updated = await server.request('PUT', '/v1/environments/looped', {
        token: member,
        body: { spec: spec(url), secrets: { REPO_KEY: KEY } },
      });
      expect(updated.status, updated.text).toBe(200);
    }
    expect(listener.count()).toBe(0);
  });
});
