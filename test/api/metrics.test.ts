/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * GET /metrics (issue 17 item 4): Prometheus' text format behind an admin token or
 * BERTH_METRICS_TOKEN, with figures that follow known work. The tasks' repository is a local
 * path that does not exist: their attempts fail at the checkout without a sandbox, so the test
 * needs no Docker and nothing leaves the machine.
 */

const REPO = '/nonexistent/berth-metrics/app.git';
const METRICS_TOKEN = 'metrics-scraper-0123456789abcdef';

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('API: /metrics', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      allowLocalRepositories: true,
      env: { BERTH_METRICS_TOKEN: METRICS_TOKEN },
    });
    const made = await server.request('POST', '/v1/environments', {
      body: { spec: { name: 'metered', repository: REPO } },
    });
    expect(made.status, made.text).toBe(201);
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses a scrape without a token (401), with a wrong one (401) and with a non-admin one (403)', async () => {
    const none = await server.request('GET', '/metrics', { token: null });
    expect(none.status).toBe(401);
    expect(none.json.code).toBe('unauthorized');
    expect(none.text).not.toContain('berth_');
    const wrong = await server.request('GET', '/metrics', {
      token: 'metrics-scraper-0123456789abcdeX',
    });
    expect(wrong.status).toBe(401);
    const user = await server.createToken('metrics-user');
    const forbidden = await server.request('GET', '/metrics', { token: user });
    expect(forbidden.status).toBe(403);
    // The metrics token opens /metrics only, no API route.
    const api = await server.request('GET', '/v1/whoami', { token: METRICS_TOKEN });
    expect(api.status).toBe(401);
  });

  it('counts known work: 3 failed attempts at their phase, queue waits, phase durations', async () => {
    const before = await server.request('GET', '/metrics', { token: METRICS_TOKEN });
    expect(before.status, before.text).toBe(200);
    expect(before.headers.get('content-type')).toContain('text/plain');
    expect(before.text).toContain('# TYPE berth_attempts_finished_total counter');
    expect(sample(before.text, 'berth_attempt_queue_wait_seconds_count')).toBe(0);
    expect(sample(before.text, 'berth_node_capacity_attempts{node')).toBeUndefined();

    const first = await server.request('POST', '/v1/tasks', {
      body: { environment: 'metered', command: 'true', attempts: 2 },
    });
    expect(first.status, first.text).toBe(201);
    const second = await server.request('POST', '/v1/tasks', {
      body: { environment: 'metered', command: 'true' },
    });
    expect(second.status, second.text).toBe(201);
    for (const id of [first.json.id as string, second.json.id as string]) {
      for (let i = 0; ; i++) {
        const task = await server.request('GET', `/v1/tasks/${id}`);
        if (task.json.status === 'failed') break;
        if (i > 200) throw new Error(`task ${id} did not fail: ${task.text}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // The scheduler records the end, then tells the observers.
    let text = '';
    for (let i = 0; i < 50; i++) {
      text = (await server.request('GET', '/metrics')).text; // the admin token works too
      if (
        sample(text, 'berth_attempt_queue_wait_seconds_count') === 3 &&
        text.includes('outcome="failed"')
      )
        break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const failed = text
      .split('\n')
      .filter((l) => l.startsWith('berth_attempts_finished_total{'))
      .map((l) => ({ line: l, value: Number(l.split(' ').at(-1)) }));
    expect(
      failed.reduce((sum, f) => sum + f.value, 0),
      text,
    ).toBe(3);
    // Each failed at the checkout, before any sandbox: its last phase was `creating`.
    expect(sample(text, 'berth_attempts_finished_total{outcome="failed",phase="creating"}')).toBe(
      3,
    );
    expect(sample(text, 'berth_attempts_started_total')).toBe(3);
    expect(sample(text, 'berth_attempt_queue_wait_seconds_count')).toBe(3);
    expect(sample(text, 'berth_attempt_phase_duration_seconds_count{phase="creating"}')).toBe(3);
    // Nothing ran a model or reached the proxy or the cache.
    expect(sample(text, 'berth_model_tokens_total{direction="input"}')).toBe(0);
    expect(sample(text, 'berth_egress_requests_total{decision="denied"}')).toBe(0);
    expect(text).toMatch(/berth_node_capacity_attempts\{node="[^"]+"\} 8/);
    expect(text).toMatch(/berth_node_attempts_running\{node="[^"]+"\} 0/);
  });
});
