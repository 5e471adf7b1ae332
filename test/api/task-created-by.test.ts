/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * A task keeps the name of the token that submitted it (`createdBy`, the web UI's "who"); a
 * member of the environment sees it on every task there, a token that may not see the
 * environment sees neither the task nor its creator.
 */

// A local path that does not exist: the attempts fail at the checkout, nothing leaves the machine.
const REPO = '/nonexistent/berth-created-by/app.git';

describe('API: who submitted a task', () => {
  let server: TestServer;
  let alice: string;
  let bob: string;
  let carol: string;
  beforeAll(async () => {
    server = await startTestServer({ allowLocalRepositories: true });
    alice = await server.createToken('alice');
    bob = await server.createToken('bob');
    carol = await server.createToken('carol');
    const made = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'shared', repository: REPO, members: ['bob'] } },
    });
    expect(made.status, made.text).toBe(201);
  });
  afterAll(async () => {
    await server.close();
  });

  it('stores the submitting token name and shows it to whoever may see the task', async () => {
    const byAlice = await server.request('POST', '/v1/tasks', {
      token: alice,
      body: { environment: 'shared', command: 'true' },
    });
    expect(byAlice.status, byAlice.text).toBe(201);
    expect(byAlice.json.createdBy).toBe('alice');
    const byBob = await server.request('POST', '/v1/tasks', {
      token: bob,
      body: { environment: 'shared', command: 'true' },
    });
    expect(byBob.status, byBob.text).toBe(201);
    expect(byBob.json.createdBy).toBe('bob');

    for (const token of [alice, bob, server.adminToken]) {
      const list = await server.request('GET', '/v1/tasks', { token });
      expect(list.json.tasks.map((t: { createdBy: string }) => t.createdBy)).toEqual([
        'bob',
        'alice',
      ]);
      const one = await server.request('GET', `/v1/tasks/${byAlice.json.id as string}`, { token });
      expect(one.json.createdBy).toBe('alice');
    }
    // carol is no member: neither task, nor who made it.
    const list = await server.request('GET', '/v1/tasks', { token: carol });
    expect(list.json.tasks).toEqual([]);
    const hidden = await server.request('GET', `/v1/tasks/${byAlice.json.id as string}`, {
      token: carol,
    });
    expect(hidden.status).toBe(404);
    expect(hidden.text).not.toContain('alice');
  });

  it('keeps the name when the token is revoked later', async () => {
    const dave = await server.createToken('dave', true);
    const made = await server.request('POST', '/v1/tasks', {
      token: dave,
      body: { environment: 'shared', command: 'true' },
    });
    expect(made.status, made.text).toBe(201);
    expect((await server.request('DELETE', '/v1/tokens/dave')).status).toBe(204);
    const shown = await server.request('GET', `/v1/tasks/${made.json.id as string}`);
    expect(shown.json.createdBy).toBe('dave');
  });
});
