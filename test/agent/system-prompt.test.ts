import { describe, expect, it } from 'vitest';
import { agentEnvironmentInfo } from '../../src/agent/agent-environment-info.js';
import { AgentsMd } from '../../src/agent/agents-md.js';
import { systemPrompt } from '../../src/agent/system-prompt.js';
import { environmentSpecSchema } from '../../src/domain/environment/environment-spec.js';
import { InMemorySandbox } from './support/in-memory-sandbox.js';

function spec(internet: Record<string, unknown>) {
  return environmentSpecSchema.parse({
    name: 'payments',
    repository: 'https://git.example/acme/payments.git',
    versions: { node: 22, python: '3.12' },
    internet,
  });
}

describe('the system prompt', () => {
  it('describes the environment: versions, allowlist, methods', async () => {
    const agentsMd = await AgentsMd.discover(
      new InMemorySandbox({
        'AGENTS.md': 'Lint: `npm run lint`. Test: `npm test`.\n',
        'svc/AGENTS.md': 'svc\n',
      }),
    );
    const prompt = systemPrompt({
      workdir: '/workspace',
      agentsMd,
      environment: agentEnvironmentInfo(
        spec({
          access: 'allowlist',
          presets: ['common-dependencies'],
          domains: ['api.payments.example', '*.cdn.example'],
          methods: ['get', 'head'],
        }),
      ),
    });
    expect(prompt).toContain('at /workspace');
    expect(prompt).toContain('- Environment: payments');
    expect(prompt).toContain('- Language versions: node 22, python 3.12');
    expect(prompt).toContain(
      'to these domains: preset common-dependencies, api.payments.example, *.cdn.example. Other hosts are refused.',
    );
    expect(prompt).toContain('- Allowed HTTP methods: GET, HEAD.');
    expect(prompt).toContain(
      '<AGENTS.md path="AGENTS.md">\nLint: `npm run lint`. Test: `npm test`.\n</AGENTS.md>',
    );
    expect(prompt).toContain('More AGENTS.md files exist in: svc.');
    expect(prompt).toContain('run the lint and test commands that AGENTS.md names');
  });

  it('says when there is no internet and no AGENTS.md', async () => {
    const prompt = systemPrompt({
      workdir: '/w',
      agentsMd: await AgentsMd.discover(new InMemorySandbox()),
      environment: agentEnvironmentInfo(spec({ access: 'off' })),
    });
    expect(prompt).toContain('- Internet: off. No network access');
    expect(prompt).toContain('The repository has no AGENTS.md at its root.');
    expect(prompt).not.toContain('More AGENTS.md');
  });
});
