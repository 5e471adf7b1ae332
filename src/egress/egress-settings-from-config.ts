import { readFile } from 'node:fs/promises';
import type { BerthConfig } from '../config/config.js';
import { BerthError } from '../errors/berth-error.js';
import type { EgressEnforcerOptions } from './egress-enforcer.js';

/**
 * The egress enforcer's settings from the configuration, for the composition roots: the extra CA
 * files are read once here (a file that cannot be read is skipped and named in `unreadable`).
 */
export async function egressSettingsFromConfig(
  config: Pick<BerthConfig, 'extraCaFiles' | 'egressHosts' | 'egressAllow' | 'egressPorts'> &
    Partial<Pick<BerthConfig, 'upstreamProxy' | 'upstreamProxyProblem'>>,
): Promise<{ options: EgressEnforcerOptions; unreadable: string[] }> {
  // Proxy variables that cannot be used stop the server (going out directly instead would only
  // fail later, and less clearly).
  if (config.upstreamProxyProblem !== undefined)
    throw new BerthError('invalid_input', config.upstreamProxyProblem);
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
