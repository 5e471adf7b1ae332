import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * Issue 13 review findings on the API side of the web UI: a live event stream ends when the
 * token behind it is revoked (cookie or bearer); the task list carries no diffs or outputs;
 * every /v1 answer is `Cache-Control: no-store`. Tasks are put in the real SQLite store as the
 * lifecycle records them.
 */

const T0 = '2026-01-01T00:00:00.000Z';
const REPO = 'https://git.example/acme/svc.git';
const MEMBERS = [
  'leaver-session-cookie',
  'leaver-bearer-token',
  'visitor',
  'cache-check',
  'tosser',
  'flooder',
  'bystander',
];
let server: TestServer;
let store: SqliteStore;
let environmentId = '';
let planted = 0;
const tokens = new Map<string, string>();

async function plant(
  phase: Attempt['phase'],
  diff = '',
): Promise<{ task: string; attempt: string }> {
  planted += 1;
  const task = `task_hard${planted}`;
  const attempt = `att_hard${planted}`;
  await store.createTask(
    {
      id: task,
      environmentId,
      prompt: 'p',
      command: null,
      ref: {},
      repository: null,
      attemptCount: 1,
      status: phase === 'succeeded' ? 'succeeded' : 'running',
      createdAt: T0,
      updatedAt: T0,
    },
    [
      {
        id: attempt,
        taskId: task,
        index: 0,
        phase,
        cacheHit: false,
        error: null,
        result:
          phase === 'succeeded'
            ? {
                baseCommit: 'a'.repeat(40),
                diff,
                turnDiff: diff,
                files: [{ path: 'big.txt', added: 1, removed: 0 }],
                message: 'done',
                commands: [
                  { command: 'make', exitCode: 0, output: 'OUTPUT'.repeat(1000), phase: 'agent' },
                ],
                snapshotImage: null,
                secretFiles: [],
              }
            : null,
        createdAt: T0,
        startedAt: T0,
        finishedAt: phase === 'succeeded' ? T0 : null,
      } as unknown as Attempt,
    ],
  );
  return { task, attempt };
}

async function appendLog(attempt: string, seq: number, text: string): Promise<void> {
  await store.appendAttemptEvents([
    { attemptId: attempt, seq, at: new Date().toISOString(), type: 'log', stream: 'stdout', text },
  ] as never);
}

/** Opens a live event stream; collects what arrives until the server ends it. */
function openStream(path: string, headers: Record<string, string>) {
  const url = new URL(server.url);
  let text = '';
  let ended = false;
  let stop = (): void => undefined;
  const done = new Promise<void>((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        headers: { accept: 'text/event-stream', ...headers },
      },
      (res: IncomingMessage) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          ended = true;
          resolve();
        });
      },
    );
    req.on('error', reject);
    req.end();
    stop = () => req.destroy();
  });
  return { done, text: () => text, ended: () => ended, stop: () => stop() };
}

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function signIn(token: string): Promise<string> {
  const response = await fetch(`${server.url}/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  expect(response.status).toBe(201);
  const cookie = /(?:__Host-)?berth_session=[^;]+/.exec(response.headers.get('set-cookie') ?? '');
  if (!cookie) throw new Error('no cookie');
  return cookie[0];
}

beforeAll(async () => {
  server = await startTestServer();
  for (const name of MEMBERS) tokens.set(name, await server.createToken(name, false));
  const created = await server.request('POST', '/v1/environments', {
    body: { spec: { name: 'svc', repository: REPO, members: MEMBERS } },
  });
  expect(created.status, created.text).toBe(201);
  environmentId = (created.json as { id: string }).id;
  store = SqliteStore.open(server.dataDir);
});

afterAll(async () => {
  await store.close();
  await server.close();
});

describe('a live event stream after the token is revoked', () => {
  for (const how of ['session cookie', 'bearer token'] as const) {
    it(`ends with a refused event (${how})`, async () => {
      const { task, attempt } = await plant('agent');
      await appendLog(attempt, 1, 'before\n');
      const name = `leaver-${how.replace(' ', '-')}`;
      const token = tokens.get(name) ?? '';
      const headers =
        how === 'session cookie'
          ? { cookie: await signIn(token) }
          : { authorization: `Bearer ${token}` };
      const stream = openStream(`/v1/tasks/${task}/attempts/${attempt}/events`, headers);
      await waitFor(() => stream.text().includes('before'));
      expect((await server.request('DELETE', `/v1/tokens/${name}`)).status).toBeLessThan(300);
      await appendLog(attempt, 2, 'AFTER-REVOKE\n');
      await waitFor(() => stream.ended(), 5_000).finally(() => stream.stop());
      expect(stream.text()).not.toContain('AFTER-REVOKE');
      expect(stream.text()).toMatch(/event: refused\ndata: \{"code":"unauthorized"/);
    });
  }

  it('a member removed mid-stream gets a refused event (not_found), and no stack trace is printed', async () => {
    const printed = vi.spyOn(console, 'error');
    const { task, attempt } = await plant('agent');
    const token = tokens.get('visitor') ?? '';
    const stream = openStream(`/v1/tasks/${task}/attempts/${attempt}/events`, {
      authorization: `Bearer ${token}`,
    });
    await appendLog(attempt, 1, 'before\n');
    await waitFor(() => stream.text().includes('before'));
    const removed = await server.request('PUT', '/v1/environments/svc', {
      body: {
        spec: { name: 'svc', repository: REPO, members: ['cache-check'] },
      },
    });
    expect(removed.status, removed.text).toBe(200);
    await appendLog(attempt, 2, 'AFTER-REMOVAL\n');
    await waitFor(() => stream.ended(), 5_000).finally(() => stream.stop());
    expect(stream.text()).not.toContain('AFTER-REMOVAL');
    expect(stream.text()).toMatch(/event: refused\ndata: \{"code":"not_found"/);
    expect(printed).not.toHaveBeenCalled();
    printed.mockRestore();
  });
});

describe('the task list', () => {
  it('carries no diffs, outputs or file lists; the task view and /diff do', async () => {
    const diff = `diff --git a/big.txt b/big.txt\n+${'DIFFTEXT'.repeat(10_000)}\n`;
    const { task } = await plant('succeeded', diff);
    const list = await server.request('GET', '/v1/tasks?limit=100');
    expect(list.status).toBe(200);
    expect(list.text).not.toContain('DIFFTEXT');
    expect(list.text).not.toContain('OUTPUT');
    const listed = (
      list.json as { tasks: { id: string; attempts: Record<string, unknown>[] }[] }
    ).tasks.find((t) => t.id === task);
    expect(listed?.attempts[0]).toMatchObject({
      filesChanged: 1,
      linesAdded: 1,
      commandCount: 1,
      status: 'succeeded',
    });
    expect(listed?.attempts[0]).not.toHaveProperty('diff');
    const shown = await server.request('GET', `/v1/tasks/${task}`);
    expect((shown.json as { attempts: { diff: string }[] }).attempts[0]?.diff).toBe(diff);
    const served = await server.request('GET', `/v1/tasks/${task}/diff`);
    expect((served.json as { diff: string }).diff).toBe(diff);
  });
});

describe('caching', () => {
  it('every /v1 answer, the session routes included, is Cache-Control: no-store', async () => {
    const token = tokens.get('cache-check') ?? '';
    const cookie = await signIn(token);
    for (const [method, path, opts] of [
      ['GET', '/v1/whoami', {}],
      ['GET', '/v1/tasks', {}],
      ['GET', '/v1/environments/nope', {}],
      ['GET', '/v1/session', { token: null, headers: { cookie } }],
      ['POST', '/v1/session', { token: null, body: { token: 'wrong' } }],
    ] as const) {
      const response = await server.request(method, path, opts);
      expect(response.headers.get('cache-control'), `${method} ${path}`).toBe('no-store');
    }
  });
});

describe('cookie tossing', () => {
  it('refuses a request with more than one session cookie, and says to clear the cookies', async () => {
    const cookie = await signIn(tokens.get('tosser') ?? '');
    const value = cookie.split('=')[1] ?? '';
    expect(
      (await server.request('GET', '/v1/session', { token: null, headers: { cookie } })).status,
    ).toBe(200);
    for (const tossed of [
      `berth_session=garbage; ${cookie}`,
      `${cookie}; berth_session=${value}`,
      `__Host-berth_session=other; ${cookie}`,
    ]) {
      const refused = await server.request('GET', '/v1/session', {
        token: null,
        headers: { cookie: tossed },
      });
      expect(refused.status, tossed).toBe(401);
      expect(refused.json).toMatchObject({
        code: 'unauthorized',
        details: { session: 'ambiguous' },
      });
      expect((refused.json as { message: string }).message).toContain("clear this site's cookies");
    }
    // A bearer request is judged by its token alone, whatever cookies come with it.
    const bearer = await server.request('GET', '/v1/whoami', {
      token: tokens.get('tosser') ?? '',
      headers: { cookie: `berth_session=a; berth_session=b` },
    });
    expect(bearer.status).toBe(200);
  });
});

describe('sign-in floods', () => {
  it("one token signing in again and again ends none of another token's sessions, and is slowed down", async () => {
    const bystander = await signIn(tokens.get('bystander') ?? '');
    const flooder = tokens.get('flooder') ?? '';
    let refused: Response | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const response = await fetch(`${server.url}/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: flooder }),
      });
      if (response.status !== 201) refused = response;
      else await response.arrayBuffer();
    }
    expect(refused?.status).toBe(429);
    expect(((await refused?.json()) as { code: string }).code).toBe('too_many_requests');
    const still = await server.request('GET', '/v1/session', {
      token: null,
      headers: { cookie: bystander },
    });
    expect(still.status).toBe(200);
    expect((still.json as { name: string }).name).toBe('bystander');
  });
});
