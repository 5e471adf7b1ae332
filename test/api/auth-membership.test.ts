/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import { startTestServer, type ApiResponse, type TestServer } from './api-server.js';

const REPO = 'https://git.example/acme/app.git';

/** The response without what differs on every request (the request id). */
function comparable(response: ApiResponse): unknown {
  const body = { ...(response.json as Record<string, unknown>) };
  delete body.requestId;
  return { status: response.status, body };
}

describe('API authentication, tokens and membership', () => {
  let server: TestServer;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    server = await startTestServer();
    alice = await server.createToken('alice');
    bob = await server.createToken('bob');
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers 401 for a missing, malformed, unknown or revoked token', async () => {
    const missing = await server.request('GET', '/v1/whoami', { token: null });
    expect(missing.status).toBe(401);
    expect(missing.json).toMatchObject({
      code: 'unauthorized',
      message: expect.stringContaining('Bearer'),
    });
    const basic = await server.request('GET', '/v1/environments', {
      token: null,
      headers: { authorization: 'Basic YTpi' },
    });
    expect(basic.status).toBe(401);
    const unknown = await server.request('GET', '/v1/environments', {
      token: 'berth_' + 'A'.repeat(43),
    });
    expect(unknown.status).toBe(401);
    expect(unknown.json.code).toBe('unauthorized');
    const garbage = await server.request('GET', '/v1/environments', { token: 'not-a-token' });
    expect(garbage.status).toBe(401);

    const carol = await server.createToken('carol');
    expect((await server.request('GET', '/v1/whoami', { token: carol })).status).toBe(200);
    expect((await server.request('DELETE', '/v1/tokens/carol')).status).toBe(204);
    const revoked = await server.request('GET', '/v1/whoami', { token: carol });
    expect(revoked.status).toBe(401);
    expect(revoked.json.message).toBe('the token was revoked');
  });

  it('needs no token for /health and /openapi.json', async () => {
    expect((await server.request('GET', '/health', { token: null })).status).toBe(200);
    expect((await server.request('GET', '/openapi.json', { token: null })).status).toBe(200);
  });

  it('lets only admin tokens manage tokens (403 otherwise)', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/tokens', undefined],
      ['POST', '/v1/tokens', { name: 'mallory', admin: true }],
      ['DELETE', '/v1/tokens/admin', undefined],
    ] as const) {
      const response = await server.request(method, path, {
        token: alice,
        ...(body ? { body } : {}),
      });
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(response.json.code).toBe('forbidden');
    }
    const list = await server.request('GET', '/v1/tokens');
    expect(list.json.tokens.map((t: { name: string }) => t.name)).not.toContain('mallory');
  });

  it('creates, lists and revokes tokens; shows the value once and never the hash', async () => {
    const created = await server.request('POST', '/v1/tokens', { body: { name: 'ci-bot' } });
    expect(created.status).toBe(201);
    expect(created.json).toEqual({
      id: expect.stringMatching(/^tok_/),
      name: 'ci-bot',
      admin: false,
      createdAt: expect.any(String),
      token: expect.stringMatching(/^berth_[A-Za-z0-9_-]{43}$/),
    });
    const who = await server.request('GET', '/v1/whoami', { token: created.json.token });
    expect(who.json).toEqual({ id: created.json.id, name: 'ci-bot', admin: false });

    const duplicate = await server.request('POST', '/v1/tokens', { body: { name: 'ci-bot' } });
    expect(duplicate.status).toBe(409);
    const badName = await server.request('POST', '/v1/tokens', { body: { name: 'tok_fake' } });
    expect(badName.status).toBe(400);
    expect(badName.json.details.issues[0].path).toBe('name');

    const list = await server.request('GET', '/v1/tokens');
    const entry = list.json.tokens.find((t: { id: string }) => t.id === created.json.id);
    expect(Object.keys(entry).sort()).toEqual([
      'admin',
      'createdAt',
      'id',
      'lastUsedAt',
      'name',
      'revokedAt',
    ]);
    expect(entry.lastUsedAt).not.toBeNull();
    expect(list.text).not.toContain(created.json.token);

    expect((await server.request('DELETE', `/v1/tokens/${created.json.id}`)).status).toBe(204);
    expect((await server.request('GET', '/v1/whoami', { token: created.json.token })).status).toBe(
      401,
    );
    expect((await server.request('DELETE', '/v1/tokens/nobody')).status).toBe(404);

    // The database has the hash, not the value.
    const db = new BetterSqlite3(join(server.dataDir, 'berth.db'), { readonly: true });
    try {
      const rows = db.prepare('select name, hash from tokens').all() as {
        name: string;
        hash: string;
      }[];
      expect(rows.find((r) => r.name === 'ci-bot')?.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(rows)).not.toContain(created.json.token);
    } finally {
      db.close();
    }
  });

  it('refuses to revoke the last admin token', async () => {
    const response = await server.request('DELETE', '/v1/tokens/admin');
    expect(response.status).toBe(409);
    expect(response.json.message).toMatch(/last admin token/);
    expect((await server.request('GET', '/v1/whoami')).status).toBe(200);
  });

  it('hides an environment from a token without membership exactly like a missing one', async () => {
    const created = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'alices', repository: REPO } },
    });
    expect(created.status).toBe(201);

    // The creator and admins see it; bob does not.
    expect((await server.request('GET', '/v1/environments/alices', { token: alice })).status).toBe(
      200,
    );
    expect((await server.request('GET', '/v1/environments/alices')).status).toBe(200);

    const spec = { spec: { name: 'alices', repository: REPO, env: { BY: 'bob' } } };
    for (const [method, body] of [
      ['GET', undefined],
      ['PUT', spec],
      ['DELETE', undefined],
    ] as const) {
      const hidden = await server.request(method, '/v1/environments/alices', {
        token: bob,
        ...(body ? { body } : {}),
      });
      const missing = await server.request(method, '/v1/environments/no-such-env', {
        token: bob,
        ...(body ? { body: { spec: { ...spec.spec, name: 'no-such-env' } } } : {}),
      });
      expect(hidden.status).toBe(404);
      expect(comparable(hidden)).toEqual(
        JSON.parse(JSON.stringify(comparable(missing)).replaceAll('no-such-env', 'alices')),
      );
    }
    const bobsList = await server.request('GET', '/v1/environments', { token: bob });
    expect(bobsList.json.environments.map((e: { name: string }) => e.name)).not.toContain('alices');
    // Nothing bob tried changed it.
    const stored = await server.request('GET', '/v1/environments/alices');
    expect(stored.json).toMatchObject({ revision: 1 });
    expect(stored.json.spec.env).toEqual({});
  });

  it('lets a token named in members see and use the environment', async () => {
    const created = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'shared', repository: REPO, members: ['bob'] } },
    });
    expect(created.status).toBe(201);
    const seen = await server.request('GET', '/v1/environments/shared', { token: bob });
    expect(seen.status).toBe(200);
    const updated = await server.request('PUT', '/v1/environments/shared', {
      token: bob,
      body: { spec: { name: 'shared', repository: REPO, members: ['bob'], env: { BY: 'bob' } } },
    });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.json.revision).toBe(2);
    const list = await server.request('GET', '/v1/environments', { token: bob });
    expect(list.json.environments.map((e: { name: string }) => e.name)).toEqual(['shared']);
  });

  it('binds membership to the token, not its name: a new token with a revoked name inherits nothing', async () => {
    const dana = await server.createToken('dana');
    const created = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'danas', repository: REPO, members: ['dana'] } },
    });
    expect(created.status, created.text).toBe(201);
    expect((await server.request('GET', '/v1/environments/danas', { token: dana })).status).toBe(
      200,
    );
    // dana's own environment (dana is its creator).
    expect(
      (
        await server.request('POST', '/v1/environments', {
          token: dana,
          body: { spec: { name: 'danas-own', repository: REPO } },
        })
      ).status,
    ).toBe(201);

    expect((await server.request('DELETE', '/v1/tokens/dana')).status).toBe(204);
    const impostor = await server.createToken('dana');
    for (const name of ['danas', 'danas-own']) {
      const hidden = await server.request('GET', `/v1/environments/${name}`, { token: impostor });
      expect(hidden.status, name).toBe(404);
      const put = await server.request('PUT', `/v1/environments/${name}`, {
        token: impostor,
        body: { spec: { name, repository: REPO, members: ['dana'] } },
      });
      expect(put.status, name).toBe(404);
      expect(
        (await server.request('DELETE', `/v1/environments/${name}`, { token: impostor })).status,
      ).toBe(404);
    }
    const list = await server.request('GET', '/v1/environments', { token: impostor });
    expect(list.json.environments).toEqual([]);
    // The environment shows the members it has: the revoked token is gone from the list.
    const shown = await server.request('GET', '/v1/environments/danas');
    expect(shown.json.spec.members).toEqual([]);
    expect(shown.json.revision).toBe(1);

    // Naming the new token again is a new, explicit grant by someone who may change it.
    const granted = await server.request('PUT', '/v1/environments/danas', {
      token: alice,
      body: { spec: { name: 'danas', repository: REPO, members: ['dana'] } },
    });
    expect(granted.status, granted.text).toBe(200);
    expect(granted.json.spec.members).toEqual(['dana']);
    expect(
      (await server.request('GET', '/v1/environments/danas', { token: impostor })).status,
    ).toBe(200);
    // Still not the environment the revoked token created.
    expect(
      (await server.request('GET', '/v1/environments/danas-own', { token: impostor })).status,
    ).toBe(404);
  });

  it('refuses a member name that no live token has (membership is bound when written)', async () => {
    const refused = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'ghosts', repository: REPO, members: ['alice', 'ghost'] } },
    });
    expect(refused.status).toBe(400);
    expect(refused.json.code).toBe('invalid_environment');
    expect(refused.json.details.issues).toEqual([
      { path: 'members[1]', message: expect.stringContaining('no live token is named "ghost"') },
    ]);
    expect((await server.request('GET', '/v1/environments/ghosts')).status).toBe(404);
    // A token made later under that name is not a member of anything by it.
    const ghost = await server.createToken('ghost');
    const list = await server.request('GET', '/v1/environments', { token: ghost });
    expect(list.json.environments).toEqual([]);
  });

  it('answers a create of a taken name the same whether the caller can see it or not', async () => {
    const made = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'taken-hidden', repository: REPO } },
    });
    expect(made.status).toBe(201);
    const mine = await server.request('POST', '/v1/environments', {
      token: bob,
      body: { spec: { name: 'taken-mine', repository: REPO } },
    });
    expect(mine.status).toBe(201);

    const attempt = (name: string, yaml: boolean) =>
      server.request('POST', '/v1/environments', {
        token: bob,
        ...(yaml
          ? {
              rawBody: `name: ${name}\nrepository: ${REPO}\n`,
              headers: { 'content-type': 'application/yaml' },
            }
          : { body: { spec: { name, repository: REPO }, secrets: { S: 'value' } } }),
      });
    for (const yaml of [false, true]) {
      const hidden = await attempt('taken-hidden', yaml);
      const visible = await attempt('taken-mine', yaml);
      expect(hidden.status).toBe(409);
      expect(hidden.json.code).toBe('conflict');
      expect(comparable(hidden)).toEqual(
        JSON.parse(JSON.stringify(comparable(visible)).replaceAll('taken-mine', 'taken-hidden')),
      );
    }
    // bob still cannot see it, and nothing of his attempts was stored.
    expect(
      (await server.request('GET', '/v1/environments/taken-hidden', { token: bob })).status,
    ).toBe(404);
    const stored = await server.request('GET', '/v1/environments/taken-hidden');
    expect(stored.json).toMatchObject({ revision: 1, secrets: [] });
  });

  it('answers the task and cache routes for a hidden environment exactly like a missing one', async () => {
    const made = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'alices-tasks', repository: REPO } },
    });
    expect(made.status).toBe(201);
    const probes = (name: string) =>
      [
        ['POST', '/v1/tasks', { environment: name, command: 'true' }],
        ['GET', `/v1/tasks?environment=${name}`, undefined],
        ['GET', `/v1/environments/${name}/cache`, undefined],
        ['DELETE', `/v1/environments/${name}/cache`, undefined],
      ] as const;
    const hiddenProbes = probes('alices-tasks');
    const missingProbes = probes('no-such-env');
    for (const [i, [method, path, body]] of hiddenProbes.entries()) {
      const hidden = await server.request(method, path, { token: bob, ...(body ? { body } : {}) });
      const [, missingPath, missingBody] = missingProbes[i] ?? [];
      const missing = await server.request(method, missingPath ?? '', {
        token: bob,
        ...(missingBody ? { body: missingBody } : {}),
      });
      expect(hidden.status, `${method} ${path}`).toBe(404);
      expect(comparable(hidden)).toEqual(
        JSON.parse(JSON.stringify(comparable(missing)).replaceAll('no-such-env', 'alices-tasks')),
      );
    }
    // No task was queued by bob's tries.
    const list = await server.request('GET', '/v1/tasks?environment=alices-tasks');
    expect(list.json.tasks).toEqual([]);
  });

  it('returns a 500 without internals when the database breaks', async () => {
    const broken = await startTestServer();
    try {
      const db = new BetterSqlite3(join(broken.dataDir, 'berth.db'));
      db.exec('alter table environments rename to environments_moved');
      db.close();
      const response = await broken.request('GET', '/v1/environments');
      expect(response.status).toBe(500);
      expect(response.json.code).toBe('internal');
      expect(response.json.message).toBe(
        `an internal error occurred (request ${response.json.requestId})`,
      );
      expect(response.text).not.toMatch(/environments|sqlite|at .*\.js/i);
      expect(broken.logs.join('\n')).toMatch(/request failed/);
    } finally {
      await broken.close();
    }
  });
});
