import { describe, expect, it } from 'vitest';
import { modelClientFromConfig } from '../../src/adapters/model/model-client-from-config.js';
import { agentLimitsSchema } from '../../src/agent/agent-limits-schema.js';
import { DEFAULT_AGENT_LIMITS, mergeAgentLimits } from '../../src/agent/agent-loop.js';

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
});
