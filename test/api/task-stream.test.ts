import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * GET /v1/tasks/events, the task list's live changes: a new task and a status change arrive on
 * an open stream; a member never receives a task of an environment they may not see, and one
 * that leaves their sight is sent as `hidden`; a revoked token ends the stream with `refused`.
 * Tasks are put in the real SQLite store as the lifecycle records them.
 */

const T0 = '2026-01-01T00:00:00.000Z';
let server: TestServer;
let store: SqliteStore;
const environments = new Map<string, string>();
let planted = 0;

async function plant(environment: string): Promise<string> {
  planted += 1;
  const task = `task_live${planted}`;
  await store.createTask(
    {
      id: task,
      environmentId: environments.get(environment) ?? '',
      prompt: `planted ${planted}`,
      command: null,
      ref: {},
      repository: null,
      attemptCount: 1,
      status: 'running',
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    },
    [
      {
        id: `att_live${planted}`,
        taskId: task,
        index: 0,
        phase: 'agent',
        cacheHit: false,
        error: null,
        result: null,
        createdAt: T0,
        startedAt: T0,
        finishedAt: null,
      } as unknown as Attempt,
    ],
  );
  return task;
}

/** Opens the stream; collects what arrives until the server ends it or the test stops it. */
function openStream(path: string, token: string) {
  const url = new URL(server.url);
  let text = '';
  let ended = false;
  let status = 0;
  let stop = (): void => undefined;
  const done = new Promise<void>((resolve) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
      },
      (res: IncomingMessage) => {
        status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          ended = true;
          resolve();
        });
      },
    );
    req.on('error', () => resolve());
    req.end();
    stop = () => req.destroy();
  });
  return {
    done,
    text: () => text,
    ended: () => ended,
    status: () => status,
    stop: () => stop(),
  };
}

/** The stream's events as { event, data }. */
function events(text: string): { event: string; data: Record<string, unknown> }[] {
  return text
    .split('\n\n')
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      return event && data
        ? { event, data: JSON.parse(data) as Record<string, unknown> }
        : undefined;
    })
    .filter((e): e is { event: string; data: Record<string, unknown> } => e !== undefined);
}

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

let alice = '';

beforeAll(async () => {
  server = await startTestServer();
  alice = await server.createToken('alice', false);
  for (const [name, members] of [
    ['mine', ['alice']],
    ['theirs', []],
  ] as const) {
    const created = await server.request('POST', '/v1/environments', {
      body: { spec: { name, repository: 'https://git.example/acme/svc.git', members } },
    });
    expect(created.status, created.text).toBe(201);
    environments.set(name, (created.json as { id: string }).id);
  }
  store = SqliteStore.open(server.dataDir);
});

afterAll(async () => {
  await store.close();
  await server.close();
});

describe('GET /v1/tasks/events', () => {
  it("sends the list, then a new task and a status change; a member never gets another environment's task", async () => {
    const before = await plant('mine');
    const hiddenBefore = await plant('theirs');
    const member = openStream('/v1/tasks/events', alice);
    const admin = openStream('/v1/tasks/events', server.adminToken);
    try {
      await waitFor(() => member.text().includes(before));
      const fresh = await plant('mine');
      const foreign = await plant('theirs');
      await waitFor(() => member.text().includes(fresh));
      // The attempt is cancelled (as the lifecycle records it): the task's status follows.
      await store.updateAttempt(`att_live${planted - 1}`, {
        phase: 'cancelled',
        finishedAt: new Date().toISOString(),
      });
      await waitFor(() =>
        events(member.text()).some((e) => e.data.id === fresh && e.data.status === 'cancelled'),
      );
      // The admin sees both environments' tasks on its own stream.
      await waitFor(() => admin.text().includes(foreign) && admin.text().includes(hiddenBefore));
      // The summaries carry no outputs or diffs (as GET /v1/tasks).
      const sent = events(member.text());
      expect(sent.every((e) => e.event === 'task')).toBe(true);
      expect(sent.some((e) => 'diff' in ((e.data.attempts as object[])[0] ?? {}))).toBe(false);
      expect(member.text()).not.toContain(foreign);
      expect(member.text()).not.toContain(hiddenBefore);
      expect(member.text()).not.toContain('theirs');
    } finally {
      member.stop();
      admin.stop();
    }
  });

  it('sends `hidden` when the member leaves the environment, and `refused` when the token is revoked', async () => {
    const bob = await server.createToken('bob', false);
    const shared = await server.request('PUT', '/v1/environments/theirs', {
      body: {
        spec: { name: 'theirs', repository: 'https://git.example/acme/svc.git', members: ['bob'] },
      },
    });
    expect(shared.status, shared.text).toBe(200);
    const task = await plant('theirs');
    const stream = openStream('/v1/tasks/events?environment=theirs', bob);
    try {
      await waitFor(() => stream.text().includes(task));
      const removed = await server.request('PUT', '/v1/environments/theirs', {
        body: {
          spec: { name: 'theirs', repository: 'https://git.example/acme/svc.git', members: [] },
        },
      });
      expect(removed.status, removed.text).toBe(200);
      // ?environment=theirs is no longer visible: the stream ends with refused (not_found).
      await waitFor(() => stream.ended());
      const last = events(stream.text()).at(-1);
      expect(last?.event).toBe('refused');
      expect(last?.data.code).toBe('not_found');
    } finally {
      stream.stop();
    }

    const carol = await server.createToken('carol', false);
    await server.request('PUT', '/v1/environments/mine', {
      body: {
        spec: {
          name: 'mine',
          repository: 'https://git.example/acme/svc.git',
          members: ['alice', 'carol'],
        },
      },
    });
    const mineTask = await plant('mine');
    const all = openStream('/v1/tasks/events', carol);
    try {
      await waitFor(() => all.text().includes(mineTask));
      await server.request('PUT', '/v1/environments/mine', {
        body: {
          spec: {
            name: 'mine',
            repository: 'https://git.example/acme/svc.git',
            members: ['alice'],
          },
        },
      });
      await waitFor(() =>
        events(all.text()).some((e) => e.event === 'hidden' && e.data.id === mineTask),
      );
      expect((await server.request('DELETE', '/v1/tokens/carol')).status).toBe(204);
      await waitFor(() => all.ended());
      expect(events(all.text()).at(-1)).toMatchObject({
        event: 'refused',
        data: { code: 'unauthorized' },
      });
    } finally {
      all.stop();
    }
  });

  it('without Accept: text/event-stream, answers the list once; it is in /openapi.json', async () => {
    await plant('mine');
    const once = await server.request('GET', '/v1/tasks/events', { token: alice });
    expect(once.status).toBe(200);
    const ids = (once.json as { tasks: { environment: string }[] }).tasks.map((t) => t.environment);
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids)).toEqual(new Set(['mine']));
    const doc = await server.request('GET', '/openapi.json', { token: null });
    expect(Object.keys((doc.json as { paths: object }).paths)).toContain('/v1/tasks/events');
  });

  it('refuses a token its 9th open stream (429) while another token still gets one; a closed stream frees its slot', async () => {
    await plant('mine');
    const bob = await server.createToken('bob-streams', true);
    const mine = Array.from({ length: 8 }, () => openStream('/v1/tasks/events', bob));
    await waitFor(() => mine.every((s) => events(s.text()).some((e) => e.event === 'task')));
    expect(mine.map((s) => s.status())).toEqual(Array(8).fill(200));

    const ninth = openStream('/v1/tasks/events', bob);
    await waitFor(() => ninth.status() !== 0);
    expect(ninth.status()).toBe(429);
    await ninth.done;
    expect(JSON.parse(ninth.text())).toMatchObject({ code: 'too_many_requests' });
    // The list itself still answers, and so does another token's stream.
    expect((await server.request('GET', '/v1/tasks?limit=1', { token: bob })).status).toBe(200);
    const other = openStream('/v1/tasks/events', alice);
    await waitFor(() => events(other.text()).some((e) => e.event === 'task'));
    expect(other.status()).toBe(200);

    mine[0]?.stop();
    let again = openStream('/v1/tasks/events', bob);
    await waitFor(() => {
      if (again.status() === 429 && again.ended()) again = openStream('/v1/tasks/events', bob);
      return again.status() === 200;
    });
    for (const s of [...mine, other, again]) s.stop();
  });
});
