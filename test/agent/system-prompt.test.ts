import { describe, expect, it } from 'vitest';
import { agentEnvironmentInfo } from '../../src/agent/agent-environment-info.js';
import { AgentsMd } from '../../src/agent/agents-md.js';
import { agentsMdMessage, systemPrompt } from '../../src/agent/system-prompt.js';
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

  it('shows two nested levels of AGENTS.md outer first, once each, nearest stated to win', async () => {
    const agentsMd = await AgentsMd.discover(
      new InMemorySandbox({
        'AGENTS.md': 'root rules\n',
        'pkg/AGENTS.md': 'pkg rules: tabs\n',
        'pkg/sub/AGENTS.md': 'sub rules: spaces\n',
        'pkg/sub/x.ts': 'x\n',
        'other/y.ts': 'y\n',
      }),
    );
    const prompt = systemPrompt({ workdir: '/w', agentsMd });
    expect(prompt).toContain('More AGENTS.md files exist in: pkg, pkg/sub.');
    expect(prompt).toContain('the AGENTS.md nearest to the file wins');
    expect(await agentsMd.forPaths(['other/y.ts'])).toEqual([]);
    const files = await agentsMd.forPaths(['pkg/sub/x.ts']);
    expect(files.map((f) => f.dir)).toEqual(['pkg', 'pkg/sub']);
    const message = agentsMdMessage(files);
    expect(message.indexOf('pkg rules')).toBeLessThan(message.indexOf('sub rules'));
    expect(message).toContain('wins over outer ones where they disagree');
    // Shown once: working there again adds nothing.
    expect(await agentsMd.forPaths(['pkg/sub/x.ts', 'pkg/z.ts'])).toEqual([]);
  });
});
