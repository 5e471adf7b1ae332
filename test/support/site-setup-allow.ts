import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `BERTH_SETUP_ALLOW` for the tests on this machine, as a site's operator would set it: the
 * addresses of the package registries this machine's npm and apt use (one /32 each): on a machine
 * where they resolve into a range the setup network refuses (a site mirror, or an intercepting
 * proxy on a private or documentation address) setup needs them; a public one is reachable
 * anyway, so allowing it changes nothing. A value already set wins. Names are read from npm's
 * and apt's own configuration, never written here. Loaded by vitest.config.ts (no imports from
 * src/, which the config loader does not resolve).
 */
export function siteSetupAllow(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BERTH_SETUP_ALLOW !== undefined) return env.BERTH_SETUP_ALLOW;
  const hosts = new Set<string>();
  const hostOf = (url: string) => /^[a-z+]+:\/\/(?:[^@/]*@)?([^/:\s]+)/i.exec(url.trim())?.[1];
  try {
    const registry = execFileSync('npm', ['config', 'get', 'registry'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const host = hostOf(registry);
    if (host !== undefined) hosts.add(host);
  } catch {
    // no npm: nothing to add
  }
  const sources = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) sources.push(...readdirSync(dir).map((f) => join(dir, f)));
  for (const file of sources) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const match of text.matchAll(/(?:^deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(\S+)/gm)) {
      const host = hostOf(match[1] ?? '');
      if (host !== undefined) hosts.add(host);
    }
  }
  const ranges = new Set<string>();
  for (const host of hosts) {
    let answer: string;
    try {
      answer = execFileSync('getent', ['ahostsv4', host], { encoding: 'utf8', timeout: 10_000 });
    } catch {
      continue;
    }
    for (const line of answer.split('\n')) {
      const address = line.split(/\s+/)[0] ?? '';
      if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) ranges.add(`${address}/32`);
    }
  }
  return [...ranges].sort().join(',');
}
