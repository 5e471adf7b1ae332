import { describe, expect, it } from 'vitest';
import { modelClientFromConfig } from '../../src/adapters/model/model-client-from-config.js';
import { agentLimitsSchema } from '../../src/agent/agent-limits-schema.js';
import { DEFAULT_AGENT_LIMITS, mergeAgentLimits } from '../../src/agent/agent-loop.js';
import { agentDeadline } from '../../src/lifecycle/agent-phase.js';

describe('model configuration', () => {
  it('builds the client from config.model and names what is missing', () => {
    expect(
      modelClientFromConfig({ baseUrl: 'http://127.0.0.1:1/v1', model: 'm', apiKey: 'k' }).model,
    ).toBe('m');
    expect(() => modelClientFromConfig({ model: 'm' })).toThrow(/BERTH_MODEL_BASE_URL/);
    expect(() => modelClientFromConfig({ baseUrl: 'http://127.0.0.1:1/v1' })).toThrow(
      /BERTH_MODEL \(or --model\)/,
    );
  });

  it('validates and layers limits: defaults, server, task', () => {
    const server = agentLimitsSchema.parse({ maxTurns: 80, wallTimeMs: 3_600_000 });
    const task = agentLimitsSchema.parse({ maxTurns: 20 });
    expect(mergeAgentLimits(server, task)).toEqual({
      ...DEFAULT_AGENT_LIMITS,
      maxTurns: 20,
      wallTimeMs: 3_600_000,
    });
    const bad = agentLimitsSchema.safeParse({ maxTurns: 0, turns: 3 });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path.join('.') || i.message)).toEqual(
      expect.arrayContaining(['maxTurns']),
    );
  });

  it('leaves the attempt a fifth of its time limit (10 s to 2 min) for the results', () => {
    expect(agentDeadline(1000, 30_000)).toBe(1000 + 20_000);
    expect(agentDeadline(0, 600_000)).toBe(480_000);
    expect(agentDeadline(0, 3_600_000)).toBe(3_480_000);
    expect(agentDeadline(0, 5_000)).toBe(0);
  });
});

describe('formatAgentEvent', () => {
  it('prints calls, results, plans, tokens and the end in one line each', async () => {
    const { formatAgentEvent } = await import('../../src/agent/format-agent-event.js');
    expect(
      formatAgentEvent(
        {
          type: 'tool_call',
          turn: 1,
          callId: 'c',
          tool: 'shell',
          arguments: '{"command":\n ["ls"]}',
        },
        '[1] ',
      ),
    ).toBe('[1] > shell {"command": ["ls"]}\n');
    expect(
      formatAgentEvent(
        {
          type: 'tool_result',
          turn: 1,
          callId: 'c',
          tool: 'shell',
          ok: false,
          output: 'Exit code: 1\nWall time: 0.1 s',
          durationMs: 5,
        },
        '',
      ),
    ).toBe('< shell (failed): Exit code: 1\n');
    expect(
      formatAgentEvent(
        {
          type: 'plan',
          plan: [
            { step: 'a', status: 'completed' },
            { step: 'b', status: 'in_progress' },
          ],
        },
        '',
      ),
    ).toBe('plan:\n  [x] a\n  [~] b\n');
    expect(
      formatAgentEvent({ type: 'agent_end', reason: 'loop', turns: 4, message: 'x' }, ''),
    ).toBe('agent ended (loop) after 4 turns\n');
    expect(
      formatAgentEvent(
        {
          type: 'usage',
          turn: 1,
          promptTokens: 1,
          completionTokens: 1,
          totalPromptTokens: 1,
          totalCompletionTokens: 1,
        },
        '',
      ),
    ).toBe('tokens: prompt 1, completion 1, total 2 (attempt total 2)\n');
    expect(
      formatAgentEvent(
        {
          type: 'usage',
          turn: 2,
          promptTokens: 1200,
          completionTokens: 34,
          totalPromptTokens: 2300,
          totalCompletionTokens: 80,
          estimated: true,
        },
        '[a1] ',
      ),
    ).toBe(
      '[a1] tokens: prompt 1200, completion 34, total 1234 (attempt total 2380) (estimated)\n',
    );
  });
});
