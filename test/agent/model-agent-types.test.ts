import { describe, expect, it } from 'vitest';
import { modelClientFromConfig } from '../../src/adapters/model/model-client-from-config.js';
import { agentEnvironmentInfo } from '../../src/agent/agent-environment-info.js';
import { agentLimitsSchema } from '../../src/agent/agent-limits-schema.js';
import { mergeAgentLimits } from '../../src/agent/agent-loop.js';
import { ModelAgent } from '../../src/agent/model-agent.js';
import { environmentSpecSchema } from '../../src/domain/environment/environment-spec.js';

describe('ModelAgent wiring', () => {
  it('takes the environment spec and optional settings as the lifecycle holds them', async () => {
    const spec = environmentSpecSchema.parse({
      name: 'e',
      repository: 'https://git.example/a/b.git',
    });
    const agent = new ModelAgent({
      model: modelClientFromConfig({ baseUrl: 'http://127.0.0.1:9/v1', model: 'm' }),
      modelName: spec.model,
      limits: mergeAgentLimits(agentLimitsSchema.parse({}), undefined),
      environment: agentEnvironmentInfo(spec),
    });
    // Without the runtime in its context the agent refuses to start, clearly.
    await expect(
      agent.run({
        attemptId: 'att_x',
        prompt: 'p',
        workdir: '/w',
        exec: () => Promise.reject(new Error('unused')),
        emit: () => undefined,
        signal: new AbortController().signal,
      }),
    ).rejects.toThrow(/needs the sandbox runtime and id/);
  });
});
