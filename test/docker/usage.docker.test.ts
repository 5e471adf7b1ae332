import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { FakeModelServer } from '../support/fake-model-server.js';
import { makeBuggyAdderRepository } from '../support/buggy-adder-repository.js';
import { after } from '../support/scripted-turns.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage } from './lifecycle-support.js';
import type { UsageReport } from '../../src/usage/usage-service.js';

/**
 * Usage of a real attempt (issue 17 item 5) through `berth serve`, the CLI, the real Docker
 * engine and a scripted model (a real Chat Completions server on loopback) that reports known
 * token counts: `berth usage --json` gives exactly those tokens, the sandbox's CPU-seconds (the
 * agent's command hashes 64 MiB) and peak memory from the engine's statistics, and the wall
 * time; /metrics counts the same tokens; the environment's tokensPerDay (below what the task
 * used) then refuses the next task; `--since yesterday-ish` is refused with the accepted forms.
 */

const INSTANCE = `usage-${process.pid}`;
const TOKENS_IN = [1000, 1500];
const TOKENS_OUT = [20, 30];

let model: FakeModelServer;
let server: ServeHandle;
let auth: string[];

beforeAll(async () => {
  const repo = makeBuggyAdderRepository('usage-repo');
  model = await FakeModelServer.start([]);
  server = await startServe(
    ['--allow-local-repos', '--model-base-url', model.baseUrl, '--model', 'fake-coder'],
    { BERTH_MODEL_API_KEY: 'sk-usage-test-1', BERTH_CONCURRENCY: '1', BERTH_INSTANCE: INSTANCE },
  );
  auth = ['--url', server.url, '--token', server.adminToken];
  const file = join(tempDir('usage'), 'env.yaml');
  writeFileSync(
    file,
    `name: metered\nrepository: ${repo}\nimage: ${lifecycleTestImage()}\nsetup: echo ready\nlimits:\n  tokensPerDay: 2000\n`,
  );
  const created = await runBerth(['env', 'create', '--file', file, ...auth]);
  expect(created.code, created.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  removeInstanceImages(INSTANCE);
  await model?.close();
});

describe('usage of a real attempt, and the token budget (docker)', () => {
  it("records the model's tokens, the sandbox's CPU and peak memory, and the wall time", async () => {
    model.push(
      {
        toolCalls: [
          {
            name: 'shell',
            arguments: {
              command: ['bash', '-lc', 'head -c 67108864 /dev/zero | sha256sum && echo hashed'],
            },
          },
        ],
        usage: { prompt: TOKENS_IN[0]!, completion: TOKENS_OUT[0]! },
      },
      after(/hashed/, {
        content: 'Hashed it.',
        usage: { prompt: TOKENS_IN[1]!, completion: TOKENS_OUT[1]! },
      }),
    );
    const run = await runBerth(['exec', '--env', 'metered', '--wait', 'Hash some zeros.', ...auth]);
    expect(run.code, run.stdout + run.stderr).toBe(0);

    let report: UsageReport | undefined;
    for (let i = 0; i < 50; i++) {
      const listed = await runBerth(['usage', '--json', ...auth]);
      expect(listed.code, listed.stderr).toBe(0);
      report = JSON.parse(listed.stdout) as UsageReport;
      if (report.total.attempts === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const group = report?.groups[0];
    expect(group?.name).toBe('metered');
    expect(group?.attempts).toBe(1);
    expect(group?.inputTokens).toBe(TOKENS_IN[0]! + TOKENS_IN[1]!);
    expect(group?.outputTokens).toBe(TOKENS_OUT[0]! + TOKENS_OUT[1]!);
    // sha256 of 64 MiB takes well over 0.05 s of CPU on any machine; the peak counts bash,
    // the exec agent and the pipe's buffers.
    expect(group?.cpuSeconds).toBeGreaterThan(0.05);
    expect(group?.peakMemoryBytes).toBeGreaterThan(1024 * 1024);
    expect(group?.wallSeconds).toBeGreaterThan(0);

    const table = await runBerth(['usage', '--by', 'day', ...auth]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain(new Date().toISOString().slice(0, 10));
    expect(table.stdout).toContain('2500');

    const metrics = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    const text = await metrics.text();
    expect(text).toContain('berth_model_tokens_total{direction="input"} 2500');
    expect(text).toContain('berth_model_tokens_total{direction="output"} 50');
    expect(text).toContain('berth_attempts_finished_total{outcome="succeeded",phase="results"} 1');
  }, 300_000);

  it('refuses the next task: the day used 2550 tokens of tokensPerDay 2000', async () => {
    const refused = await runBerth(['exec', '--env', 'metered', 'Again.', ...auth]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'used its model tokens for today: 2550 of limits.tokensPerDay 2000',
    );
    expect(model.remainingTurns).toBe(0);
  });

  it('refuses --since yesterday-ish with the accepted forms, before any request', async () => {
    const bad = await runBerth(['usage', '--since', 'yesterday-ish', ...auth]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since "yesterday-ish" is not a time');
    expect(bad.stderr).toContain('30m, 24h, 7d, 2w');
  });
});
