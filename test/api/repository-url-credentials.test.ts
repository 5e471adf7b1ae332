/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- tests poke at JSON bodies */
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * A repository URL with credentials in it (`https://bot:TOKEN@host/…`) used to be stored as it
 * was and shown to every member of the environment. It is refused now, pointing to
 * `repository.credentials`; one stored before is shown with the credentials masked.
 */

const SECRET = 'ghp_S3cretValue0123456789';
const ENCODED = 'p%40ss%3Aw0rd';

/** URLs that carry a credential, each with where it is (the secret must never come back). */
const WITH_CREDENTIALS = [
  `https://bot:${SECRET}@git.example/acme/app.git`,
  `https://${SECRET}@git.example/acme/app.git`,
  `https://:${SECRET}@git.example/acme/app.git`,
  `HTTPS://bot:${SECRET}@git.example/acme/app.git`,
  `http://bot:${SECRET}@git.example/acme/app.git`,
  `https://bot:${ENCODED}@git.example/acme/app.git`,
  `git://bot:${SECRET}@git.example/acme/app.git`,
  `ssh://git:${SECRET}@git.example/acme/app.git`,
  `ssh://git:${SECRET}@git.example:2222/acme/app.git`,
  `git:${SECRET}@git.example:acme/app.git`,
];

describe('credentials in a repository URL', () => {
  let server: TestServer;
  let member: string;

  beforeAll(async () => {
    server = await startTestServer();
    member = await server.createToken('member');
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses them on create, validate and update, pointing to repository.credentials', async () => {
    const existing = await server.request('POST', '/v1/environments', {
      body: { spec: { name: 'existing', repository: 'https://git.example/acme/app.git' } },
    });
    expect(existing.status).toBe(201);
    for (const [i, url] of WITH_CREDENTIALS.entries()) {
      const name = `creds-${i}`;
      const attempts = [
        ['POST', '/v1/environments', { spec: { name, repository: { url } } }, 'repository.url'],
        ['POST', '/v1/environments', { spec: { name, repository: url } }, 'repository'],
        [
          'POST',
          '/v1/environments/validate',
          { spec: { name, repository: { url } } },
          'repository.url',
        ],
        [
          'PUT',
          '/v1/environments/existing',
          { spec: { name: 'existing', repository: { url, defaultBranch: 'main' } } },
          'repository.url',
        ],
      ] as const;
      for (const [method, path, body, field] of attempts) {
        const refused = await server.request(method, path, { body });
        const what = `${method} ${path} ${url}`;
        expect(refused.status, what).toBe(400);
        expect(refused.json.code, what).toBe('invalid_environment');
        expect(refused.json.details.issues, what).toEqual([
          { path: field, message: expect.stringContaining('repository.credentials') },
        ]);
        expect(refused.json.message, what).toMatch(/credentials/);
        expect(refused.text, what).not.toContain(SECRET);
        expect(refused.text, what).not.toContain(ENCODED);
      }
      // The environment file as the body (YAML): the same refusal, with its line.
      const yaml = await server.request('POST', '/v1/environments', {
        rawBody: `name: ${name}\nrepository:\n  url: "${url}"\n`,
        headers: { 'content-type': 'application/yaml' },
      });
      expect(yaml.status, `${url}: ${yaml.text}`).toBe(400);
      expect(yaml.json.details.issues[0]).toMatchObject({ path: 'repository.url', line: 3 });
      expect(yaml.text).not.toContain(SECRET);
      expect((await server.request('GET', `/v1/environments/${name}`)).status).toBe(404);
    }
    const unchanged = await server.request('GET', '/v1/environments/existing');
    expect(unchanged.json.revision).toBe(1);
    expect(unchanged.json.spec.repository.url).toBe('https://git.example/acme/app.git');
    // Nothing of them reached the database.
    const db = new BetterSqlite3(join(server.dataDir, 'berth.db'), { readonly: true });
    try {
      const specs = db.prepare('select spec from environments').pluck().all().join('\n');
      expect(specs).not.toContain(SECRET);
      expect(specs).not.toContain(ENCODED);
    } finally {
      db.close();
    }
  });

  it('keeps accepting an ssh user and URLs without credentials', async () => {
    for (const [i, url] of [
      'ssh://git@git.example/acme/app.git',
      'ssh://git@git.example:2222/acme/app.git',
      'git@git.example:acme/app.git',
      'https://git.example/acme/app.git',
      'https://git.example/acme/app@v2.git',
    ].entries()) {
      const created = await server.request('POST', '/v1/environments', {
        body: { spec: { name: `plain-${i}`, repository: url } },
      });
      expect(created.status, `${url}: ${created.text}`).toBe(201);
      expect(created.json.spec.repository.url).toBe(url);
    }
  });

  it('masks the credentials of a URL stored before the rule, for members and admins alike', async () => {
    const made = await server.request('POST', '/v1/environments', {
      body: {
        spec: {
          name: 'legacy',
          repository: 'https://git.example/acme/app.git',
          members: ['member'],
        },
      },
    });
    expect(made.status).toBe(201);
    const legacySsh = await server.request('POST', '/v1/environments', {
      body: {
        spec: {
          name: 'legacy-ssh',
          repository: 'ssh://git@git.example/acme/app.git',
          members: ['member'],
        },
      },
    });
    expect(legacySsh.status).toBe(201);
    // What an older Berth stored (its validation let these through).
    const db = new BetterSqlite3(join(server.dataDir, 'berth.db'));
    try {
      const put = db.prepare('update environments set spec = ? where name = ?');
      const stored = (name: string, url: string) => {
        const spec = JSON.parse(
          db.prepare('select spec from environments where name = ?').pluck().get(name) as string,
        );
        spec.repository.url = url;
        put.run(JSON.stringify(spec), name);
      };
      stored('legacy', `https://bot:${SECRET}@git.example/acme/app.git`);
      stored('legacy-ssh', `ssh://git:${SECRET}@git.example/acme/app.git`);
    } finally {
      db.close();
    }
    for (const token of [member, server.adminToken]) {
      const shown = await server.request('GET', '/v1/environments/legacy', { token });
      expect(shown.status).toBe(200);
      expect(shown.json.spec.repository.url).toBe('https://***@git.example/acme/app.git');
      expect(shown.text).not.toContain(SECRET);
      const ssh = await server.request('GET', '/v1/environments/legacy-ssh', { token });
      expect(ssh.json.spec.repository.url).toBe('ssh://git:***@git.example/acme/app.git');
      expect(ssh.text).not.toContain(SECRET);
      const list = await server.request('GET', '/v1/environments', { token });
      expect(list.text).toContain('https://***@git.example/acme/app.git');
      expect(list.text).not.toContain(SECRET);
    }
    // An update that keeps the masked URL (a read, edited, sent back) is refused, not stored.
    const shown = await server.request('GET', '/v1/environments/legacy', { token: member });
    const back = await server.request('PUT', '/v1/environments/legacy', {
      token: member,
      body: { spec: { ...shown.json.spec, env: { A: '1' } } },
    });
    expect(back.status).toBe(400);
    expect(back.json.details.issues[0].message).toContain('repository.credentials');
    // Moving the token to repository.credentials is accepted, and the URL is clean.
    const moved = await server.request('PUT', '/v1/environments/legacy', {
      token: member,
      body: {
        spec: {
          ...shown.json.spec,
          repository: {
            url: 'https://git.example/acme/app.git',
            credentials: { secret: 'GIT_TOKEN', username: 'bot' },
          },
          secrets: ['GIT_TOKEN'],
        },
        secrets: { GIT_TOKEN: SECRET },
      },
    });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.text).not.toContain(SECRET);
  });
});
