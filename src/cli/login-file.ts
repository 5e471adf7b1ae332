import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../errors/berth-error.js';

/** The CLI's stored login (server URL and token), a 0600 file in the config directory. */
export interface Login {
  url: string;
  token: string;
}

export function loginPath(configDir: string): string {
  return join(configDir, 'login.json');
}

export function readLogin(configDir: string): Login | undefined {
  let text: string;
  try {
    text = readFileSync(loginPath(configDir), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<Login>;
    if (typeof value.url === 'string' && typeof value.token === 'string')
      return { url: value.url, token: value.token };
  } catch {
    // fall through
  }
  throw new BerthError(
    'invalid_input',
    `the login file ${loginPath(configDir)} is damaged; run \`berth login\` again`,
  );
}

export function writeLogin(configDir: string, login: Login): string {
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const path = loginPath(configDir);
  writeFileSync(path, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
