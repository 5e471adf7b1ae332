/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../api/api-server.js';

/**
 * The webhook route on a real server (no Berth token: GitHub signs instead) and the environment
 * rule of one environment per repository, through the API.
 */

const SECRET = 'whsec-route-test';

function sign(body: string, secret = SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

describe('GitHub routes on a real server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      allowLocalRepositories: true,
      env: { BERTH_GITHUB_WEBHOOK_SECRET: SECRET, BERTH_GITHUB_TOKEN: 'ghs-unused' },
    });
  });
  afterAll(async () => {
    await server.close();
  });

  const post = (event: string, body: string, signature?: string) =>
    server.request('POST', '/v1/integrations/github/webhook', {
      token: null,
      rawBody: body,
      headers: {
        'content-type': 'application/json',
        'x-github-event': event,
        'x-github-delivery': `d-${Math.random().toString(16).slice(2)}`,
        ...(signature !== undefined ? { 'x-hub-signature-256': signature } : {}),
      },
    });

  it('needs the signature, not a token: 401 without or with a wrong one; 204 for other events', async () => {
    const body = JSON.stringify({ action: 'created', zen: 'x' });
    expect((await post('issue_comment', body)).status).toBe(401);
    expect((await post('issue_comment', body, sign(body, 'wrong'))).status).toBe(401);
    expect((await post('issue_comment', body, sign(`${body} `))).status).toBe(401);
    // A Berth token does not replace the signature.
    const withToken = await server.request('POST', '/v1/integrations/github/webhook', {
      rawBody: body,
      headers: { 'x-github-event': 'issues', 'x-github-delivery': 'd-token' },
    });
    expect(withToken.status).toBe(401);
    const other = JSON.stringify({ action: 'opened' });
    expect((await post('issues', other, sign(other))).status).toBe(204);
    expect((await post('ping', other, sign(other))).status).toBe(200);
    expect(server.logs.some((l) => l.includes('missing or wrong X-Hub-Signature-256'))).toBe(true);
  });

  it("one environment per repository: a second is refused with the first one's name", async () => {
    const spec = (name: string, repository: string) => ({
      spec: {
        name,
        repository: '/nonexistent/berth-gh/app.git',
        triggers: { github: { repository } },
      },
    });
    const first = await server.request('POST', '/v1/environments', {
      body: spec('web', 'acme/app'),
    });
    expect(first.status, first.text).toBe(201);
    expect(first.json.spec.triggers.github).toEqual({ repository: 'acme/app', allow: 'write' });
    const second = await server.request('POST', '/v1/environments', {
      body: spec('api', 'Acme/App'),
    });
    expect(second.status).toBe(409);
    expect(second.json.message).toContain(
      'the environment "web" already serves the GitHub repository Acme/App',
    );
    const updated = await server.request('PUT', '/v1/environments/web', {
      body: spec('web', 'acme/app'),
    });
    expect(updated.status, updated.text).toBe(200);
    const bad = await server.request('POST', '/v1/environments', {
      body: spec('bad', 'https://github.com/acme/app'),
    });
    expect(bad.status).toBe(400);
  });
});
