/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- tests poke at JSON bodies */
import type { UsageReport } from '../../src/usage/usage-service.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * GET /v1/usage and the environments' daily budgets (issue 17 item 5) through the API, on known
 * work: tasks whose repository is a local path that does not exist fail at the checkout (nothing leaves
 * the machine), so each attempt's usage is 0 tokens and a short wall time. Tokens, CPU and memory of a real run are checked in
 * test/docker/usage.docker.test.ts.
 */

const REPO = '/nonexistent/berth-usage/app.git';

async function waitForEnd(server: TestServer, id: string, token?: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const task = await server.request('GET', `/v1/tasks/${id}`, token ? { token } : {});
    if (['failed', 'succeeded', 'cancelled'].includes(task.json.status as string)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`task ${id} did not end`);
}

describe('API: usage and budgets', () => {
  let server: TestServer;
  let alice: string;
  let bob: string;
  let aliceEnv: string;
  beforeAll(async () => {
    server = await startTestServer({ allowLocalRepositories: true });
    alice = await server.createToken('alice');
    bob = await server.createToken('bob');
    const a = await server.request('POST', '/v1/environments', {
      token: alice,
      body: { spec: { name: 'alice-env', repository: REPO, limits: { attemptsPerDay: 3 } } },
    });
    expect(a.status, a.text).toBe(201);
    aliceEnv = a.json.id as string;
    const b = await server.request('POST', '/v1/environments', {
      token: bob,
      body: { spec: { name: 'bob-env', repository: REPO } },
    });
    expect(b.status, b.text).toBe(201);
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses a task past attemptsPerDay with the limit, the count and when it resets', async () => {
    const first = await server.request('POST', '/v1/tasks', {
      token: alice,
      body: { environment: 'alice-env', command: 'true', attempts: 2 },
    });
    expect(first.status, first.text).toBe(201);
    // 2 used, 2 more would make 4 > 3.
    const over = await server.request('POST', '/v1/tasks', {
      token: alice,
      body: { environment: 'alice-env', command: 'true', attempts: 2 },
    });
    expect(over.status, over.text).toBe(429);
    expect(over.json.code).toBe('limit_reached');
    expect(over.json.message).toContain('limits.attemptsPerDay 3');
    expect(over.json.details).toMatchObject({ limit: 'attemptsPerDay', used: 2, requested: 2 });
    expect(over.json.details.resetsAt).toMatch(/T00:00:00\.000Z$/);
    // One more fits exactly; then none.
    const last = await server.request('POST', '/v1/tasks', {
      token: alice,
      body: { environment: 'alice-env', command: 'true' },
    });
    expect(last.status, last.text).toBe(201);
    const none = await server.request('POST', '/v1/tasks', {
      token: alice,
      body: { environment: 'alice-env', command: 'true' },
    });
    expect(none.status).toBe(429);
    // Another environment has its own (no) budget.
    const bobs = await server.request('POST', '/v1/tasks', {
      token: bob,
      body: { environment: 'bob-env', command: 'true' },
    });
    expect(bobs.status, bobs.text).toBe(201);
    for (const id of [first.json.id, last.json.id]) await waitForEnd(server, id as string, alice);
    await waitForEnd(server, bobs.json.id as string, bob);
  });

  it('adds the finished attempts up by environment, token and day', async () => {
    // The usage is written right after each attempt's end is recorded.
    let report: UsageReport | undefined;
    for (let i = 0; i < 50; i++) {
      report = (await server.request('GET', '/v1/usage?by=environment')).json;
      if (report.total?.attempts === 4) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (report === undefined) throw new Error('no report');
    expect(report.by).toBe('environment');
    expect(report.total.attempts).toBe(4);
    expect(report.total.inputTokens).toBe(0);
    expect(report.total.outputTokens).toBe(0);
    const byName = Object.fromEntries(report.groups.map((g) => [g.name, g]));
    expect(byName['alice-env']?.attempts).toBe(3);
    expect(byName['alice-env']?.key).toBe(aliceEnv);
    expect(byName['bob-env']?.attempts).toBe(1);
    expect(byName['alice-env']?.wallSeconds).toBeGreaterThan(0);
    // The engine's figures (whatever sandbox started before the checkout failed) are checked in
    // the Docker test; here only that they are numbers.
    expect(typeof report.total.cpuSeconds).toBe('number');

    const byToken = (await server.request('GET', '/v1/usage?by=token')).json as UsageReport;
    expect(byToken.groups.map((g) => [g.key, g.attempts])).toEqual([
      ['alice', 3],
      ['bob', 1],
    ]);
    const byDay = (await server.request('GET', '/v1/usage?by=day')).json;
    expect(byDay.groups).toHaveLength(1);
    expect(byDay.groups[0].key).toBe(new Date().toISOString().slice(0, 10));
    expect(byDay.groups[0].attempts).toBe(4);

    // A range that ends before the work: nothing.
    const earlier = (await server.request('GET', '/v1/usage?from=2020-01-01&to=2020-01-02')).json;
    expect(earlier.groups).toEqual([]);
    expect(earlier.total.attempts).toBe(0);
  });

  it('shows a token that is no admin only the environments it may see', async () => {
    const mine = (await server.request('GET', '/v1/usage?by=token', { token: bob }))
      .json as UsageReport;
    expect(mine.groups.map((g) => [g.key, g.attempts])).toEqual([['bob', 1]]);
    const envs = (await server.request('GET', '/v1/usage', { token: bob })).json as UsageReport;
    expect(envs.groups.map((g) => g.name)).toEqual(['bob-env']);
  });

  it('refuses bad ranges and groupings with the accepted forms', async () => {
    const by = await server.request('GET', '/v1/usage?by=week');
    expect(by.status).toBe(400);
    expect(by.json.message).toContain('environment, token, day');
    const from = await server.request('GET', '/v1/usage?from=yesterday-ish');
    expect(from.status).toBe(400);
    expect(from.json.message).toContain('UTC date (2026-12-01)');
    const backwards = await server.request('GET', '/v1/usage?from=2026-02-02&to=2026-02-01');
    expect(backwards.status).toBe(400);
    const impossible = await server.request('GET', '/v1/usage?from=2026-02-30');
    expect(impossible.status).toBe(400);
    expect((await server.request('GET', '/v1/usage', { token: null })).status).toBe(401);
  });
});
