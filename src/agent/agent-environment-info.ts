import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import type { AgentEnvironmentInfo } from './system-prompt.js';

/** What the system prompt says about an environment: its name, pinned versions, internet policy. */
export function agentEnvironmentInfo(spec: EnvironmentSpec): AgentEnvironmentInfo {
  const languages: Record<string, string> = {};
  for (const [name, version] of Object.entries(spec.versions))
    if (version !== undefined) languages[name] = version;
  return {
    name: spec.name,
    languages,
    internet: {
      access: spec.internet.access,
      presets: [...spec.internet.presets],
      domains: [...spec.internet.domains],
      ...(spec.internet.methods !== undefined ? { methods: [...spec.internet.methods] } : {}),
    },
  };
}
