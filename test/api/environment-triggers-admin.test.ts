/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';

/*
 * Review 3 (finding 1): `triggers` route a GitHub repository's or a Slack channel's requests into
 * an environment. A non-admin token that could set them would squat the repository or channel
 * (the admin's environment then refused 409; a GitHub reader's comment run, and pushed, through
 * the squatter's environment). Only an admin token sets, changes or removes `triggers`.
 */

const REPO = 'https://git.example/acme/app.git';
const GITHUB = { github: { repository: 'acme/app', allow: 'read' } };
const SLACK = { slack: { channels: ['C0PAYMENTS'], anyone: true } };

describe('triggers are written by admin tokens only', () => {
  let server: TestServer;
  let mallory: string;

  beforeAll(async () => {
    server = await startTestServer();
    mallory = await server.createToken('mallory');
  });
  afterAll(async () => {
    await server.close();
  });

  for (const [kind, triggers] of [
    ['github', GITHUB],
    ['slack', SLACK],
  ] as const) {
    it(`refuses a non-admin's environment that sets triggers.${kind} (403 naming the field); the admin's is created`, async () => {
      const squat = await server.request('POST', '/v1/environments', {
        token: mallory,
        body: { spec: { name: `squat-${kind}`, repository: REPO, triggers } },
      });
      expect(squat.status, squat.text).toBe(403);
      expect(squat.json.code).toBe('forbidden');
      expect(squat.json.message).toContain(`triggers.${kind}`);
      expect(squat.json.message).toContain('admin');
      expect((await server.request('GET', `/v1/environments/squat-${kind}`)).status).toBe(404);

      const own = await server.request('POST', '/v1/environments', {
        body: { spec: { name: `real-${kind}`, repository: REPO, triggers, members: ['mallory'] } },
      });
      expect(own.status, own.text).toBe(201);
    });

    it(`refuses a non-admin's update that adds, changes or removes triggers.${kind}; one that keeps them works`, async () => {
      const plain = await server.request('POST', '/v1/environments', {
        token: mallory,
        body: { spec: { name: `plain-${kind}`, repository: REPO } },
      });
      expect(plain.status, plain.text).toBe(201);
      const add = await server.request('PUT', `/v1/environments/plain-${kind}`, {
        token: mallory,
        body: { spec: { name: `plain-${kind}`, repository: REPO, triggers } },
      });
      expect(add.status, add.text).toBe(403);
      expect(add.json.message).toContain(`triggers.${kind}`);

      // The admin's environment with triggers, mallory a member.
      const name = `real-${kind}`;
      const changed =
        kind === 'github'
          ? { github: { repository: 'acme/other', allow: 'read' } }
          : { slack: { channels: ['C0OTHER'], anyone: true } };
      for (const spec of [
        { name, repository: REPO, members: ['mallory'], triggers: changed },
        { name, repository: REPO, members: ['mallory'] },
      ]) {
        const refused = await server.request('PUT', `/v1/environments/${name}`, {
          token: mallory,
          body: { spec },
        });
        expect(refused.status, refused.text).toBe(403);
        expect(refused.json.message).toContain(`triggers.${kind}`);
      }
      const kept = await server.request('PUT', `/v1/environments/${name}`, {
        token: mallory,
        body: { spec: { name, repository: REPO, members: ['mallory'], triggers, env: { A: '1' } } },
      });
      expect(kept.status, kept.text).toBe(200);
      const stored = await server.request('GET', `/v1/environments/${name}`);
      expect(stored.json.spec.triggers).toMatchObject(triggers);
      expect(stored.json.spec.env).toEqual({ A: '1' });
    });
  }
});
