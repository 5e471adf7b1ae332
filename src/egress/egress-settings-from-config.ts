import { readFile } from 'node:fs/promises';
import type { BerthConfig } from '../config/config.js';
import type { EgressEnforcerOptions } from './egress-enforcer.js';

/**
 * The egress enforcer's settings from the configuration, for the composition roots: the extra CA
 * files are read once here (a file that cannot be read is skipped and named in `unreadable`).
 */
export async function egressSettingsFromConfig(
  config: Pick<BerthConfig, 'extraCaFiles' | 'egressHosts' | 'egressAllow' | 'egressPorts'> &
    Partial<Pick<BerthConfig, 'upstreamProxy'>>,
): Promise<{ options: EgressEnforcerOptions; unreadable: string[] }> {
  const upstreamCa: string[] = [];
  const unreadable: string[] = [];
  for (const file of config.extraCaFiles) {
    try {
      const pem = await readFile(file, 'utf8');
      if (pem.includes('-----BEGIN CERTIFICATE-----')) upstreamCa.push(pem);
      else unreadable.push(file);
    } catch {
      unreadable.push(file);
    }
  }
  return {
    options: {
      upstreamCa,
      hosts: config.egressHosts,
      allow: config.egressAllow,
      extraPorts: config.egressPorts,
      ...(config.upstreamProxy !== undefined ? { upstreamProxy: config.upstreamProxy } : {}),
    },
    unreadable,
  };
}
