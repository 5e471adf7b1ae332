import { describe, expect, it } from 'vitest';
import { BerthMetrics } from '../../src/metrics/berth-metrics.js';

/**
 * The metrics registry fed with a known attempt's events (as the scheduler hands them over):
 * the phases' durations on a fixed clock, the cache's and the egress proxy's decisions, the
 * tokens at the end, and the node's figures read at the scrape. The API test
 * (test/api/metrics.test.ts) checks the same through a real server and real attempts.
 */

function value(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

describe('BerthMetrics', () => {
  it("counts a known attempt's phases, cache results, egress decisions and tokens", async () => {
    let nowMs = 0;
    const sandboxes = 4;
    const metrics = new BerthMetrics({
      node: 'node-a',
      capacityAttempts: 6,
      runningAttempts: () => 1,
      runningSandboxes: () => Promise.resolve(sandboxes),
      processMetrics: false,
      nowMs: () => nowMs,
    });
    metrics.claimed({
      attemptId: 'att_1',
      taskId: 'task_1',
      queuedAt: '2026-12-08T10:00:00.000Z',
      claimedAt: '2026-12-08T10:00:03.000Z',
    });
    const at = (ms: number, event: Parameters<BerthMetrics['event']>[1]) => {
      nowMs = ms;
      metrics.event('att_1', event);
    };
    at(0, { type: 'phase', phase: 'creating' });
    at(0, { type: 'cache', result: 'miss', reason: 'no entry' });
    at(2_000, { type: 'phase', phase: 'setup' });
    at(50_000, { type: 'cache', result: 'built', reason: 'setup finished' });
    at(62_000, { type: 'phase', phase: 'agent' });
    const egress = (allowed: boolean) => ({
      type: 'egress' as const,
      host: 'registry.example',
      port: 443,
      method: 'GET',
      scheme: 'https',
      allowed,
      rule: allowed ? 'domain' : 'not-listed',
      reason: '',
    });
    at(63_000, egress(true));
    at(63_000, egress(true));
    at(63_000, egress(false));
    at(362_000, { type: 'phase', phase: 'results' });
    nowMs = 362_500;
    metrics.finished({
      attemptId: 'att_1',
      taskId: 'task_1',
      environmentId: 'env_1',
      createdBy: 'alice',
      outcome: 'succeeded',
      lastPhase: 'results',
      claimedAt: '2026-12-08T10:00:03.000Z',
      finishedAt: '2026-12-08T10:06:05.500Z',
      tokens: { input: 1200, output: 340 },
    });
    // A second attempt resumes from the entry another built.
    metrics.event('att_2', { type: 'cache', result: 'hit', reason: 'entry' });
    metrics.event('att_3', { type: 'cache', result: 'waited', reason: 'built by another' });

    const { contentType, text } = await metrics.scrape();
    expect(contentType).toContain('text/plain');
    expect(value(text, 'berth_attempts_started_total')).toBe(1);
    expect(value(text, 'berth_attempt_queue_wait_seconds_sum')).toBe(3);
    expect(value(text, 'berth_attempt_queue_wait_seconds_bucket{le="2"}')).toBe(0);
    expect(value(text, 'berth_attempt_queue_wait_seconds_bucket{le="5"}')).toBe(1);
    expect(value(text, 'berth_attempt_phase_duration_seconds_sum{phase="creating"}')).toBe(2);
    expect(value(text, 'berth_attempt_phase_duration_seconds_sum{phase="setup"}')).toBe(60);
    expect(value(text, 'berth_attempt_phase_duration_seconds_sum{phase="agent"}')).toBe(300);
    expect(value(text, 'berth_attempt_phase_duration_seconds_sum{phase="results"}')).toBe(0.5);
    expect(value(text, 'berth_attempt_phase_duration_seconds_count{phase="agent"}')).toBe(1);
    expect(value(text, 'berth_attempts_finished_total{outcome="succeeded",phase="results"}')).toBe(
      1,
    );
    expect(value(text, 'berth_cache_misses_total')).toBe(1);
    expect(value(text, 'berth_cache_builds_total')).toBe(1);
    expect(value(text, 'berth_cache_hits_total')).toBe(1);
    expect(value(text, 'berth_cache_waits_total')).toBe(1);
    expect(value(text, 'berth_egress_requests_total{decision="allowed"}')).toBe(2);
    expect(value(text, 'berth_egress_requests_total{decision="denied"}')).toBe(1);
    expect(value(text, 'berth_model_tokens_total{direction="input"}')).toBe(1200);
    expect(value(text, 'berth_model_tokens_total{direction="output"}')).toBe(340);
    expect(value(text, 'berth_node_capacity_attempts{node="node-a"}')).toBe(6);
    expect(value(text, 'berth_node_attempts_running{node="node-a"}')).toBe(1);
    expect(value(text, 'berth_sandboxes_running')).toBe(4);

    // The engine unreachable at a scrape: no figure (NaN), not a made-up 0, and engine_up 0.
    const failing = new BerthMetrics({
      node: 'node-b',
      capacityAttempts: 1,
      runningSandboxes: () => Promise.reject(new Error('engine down')),
      processMetrics: false,
    });
    const down = (await failing.scrape()).text;
    expect(value(down, 'berth_sandboxes_running')).toBeNaN();
    expect(value(down, 'berth_engine_up')).toBe(0);
    expect(value(text, 'berth_engine_up')).toBe(1);
  });

  it('closes an attempt that went back to the queue without counting it as finished', async () => {
    let nowMs = 0;
    const metrics = new BerthMetrics({
      node: 'n',
      capacityAttempts: 1,
      processMetrics: false,
      nowMs: () => nowMs,
    });
    metrics.event('att_1', { type: 'phase', phase: 'setup' });
    nowMs = 4_000;
    metrics.event('att_1', { type: 'phase', phase: 'queued' });
    nowMs = 100_000;
    metrics.event('att_1', { type: 'phase', phase: 'creating' });
    nowMs = 101_000;
    metrics.event('att_1', { type: 'phase', phase: 'failed' });
    const { text } = await metrics.scrape();
    expect(value(text, 'berth_attempt_phase_duration_seconds_sum{phase="setup"}')).toBe(4);
    expect(value(text, 'berth_attempt_phase_duration_seconds_sum{phase="creating"}')).toBe(1);
    expect(text).not.toContain('berth_attempts_finished_total{');
  });
});
