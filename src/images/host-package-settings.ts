import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { type AptSource, parseDeb822Sources, parseOneLineSources } from './apt-sources.js';

const run = promisify(execFile);

/**
 * The host's package-manager settings the image builder carries into images, so a sandbox
 * installs packages the way this machine does (its mirror, its registry, its extra CAs behind a
 * TLS-intercepting proxy). Only locations are read: never credentials (npm auth, apt auth files).
 */
export interface HostPackageSettings {
  aptSources: AptSource[];
  /** npm's registry URL, when npm is installed on the host. */
  npmRegistry?: string;
  /** Extra CA certificates (PEM) the host trusts beyond the distribution's set. */
  extraCaCertificates: { name: string; pem: string }[];
}

export interface HostSettingsLocations {
  /** Default: /etc/apt. */
  aptDir?: string;
  /** Default: /usr/local/share/ca-certificates. */
  caDir?: string;
  /** Command printing npm's registry; default `npm config get registry`. Empty to skip. */
  npmCommand?: string[];
}

export async function readHostPackageSettings(
  locations: HostSettingsLocations = {},
): Promise<HostPackageSettings> {
  const aptDir = locations.aptDir ?? '/etc/apt';
  const aptSources: AptSource[] = [];
  const main = await readText(path.join(aptDir, 'sources.list'));
  if (main !== undefined) aptSources.push(...parseOneLineSources(main));
  const listDir = path.join(aptDir, 'sources.list.d');
  for (const name of (await listNames(listDir)).sort()) {
    const text =
      name.endsWith('.list') || name.endsWith('.sources')
        ? await readText(path.join(listDir, name))
        : undefined;
    if (text === undefined) continue;
    aptSources.push(
      ...(name.endsWith('.sources') ? parseDeb822Sources(text) : parseOneLineSources(text)),
    );
  }

  const npmRegistry = await readNpmRegistry(
    locations.npmCommand ?? ['npm', 'config', 'get', 'registry'],
  );

  const extraCaCertificates: HostPackageSettings['extraCaCertificates'] = [];
  const caDir = locations.caDir ?? '/usr/local/share/ca-certificates';
  for (const file of await crtFiles(caDir)) {
    const pem = await readText(file);
    if (pem?.includes('BEGIN CERTIFICATE') === true) {
      extraCaCertificates.push({ name: path.relative(caDir, file).replaceAll('/', '_'), pem });
    }
  }
  return { aptSources, ...(npmRegistry !== undefined ? { npmRegistry } : {}), extraCaCertificates };
}

async function readNpmRegistry(command: string[]): Promise<string | undefined> {
  const [file, ...args] = command;
  if (file === undefined) return undefined;
  try {
    const { stdout } = await run(file, args, { timeout: 20_000 });
    const registry = stdout.trim();
    return /^https?:\/\/\S+$/.test(registry) ? registry : undefined;
  } catch {
    return undefined;
  }
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function listNames(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function crtFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await crtFiles(full)));
    else if (entry.name.endsWith('.crt')) files.push(full);
  }
  return files;
}
