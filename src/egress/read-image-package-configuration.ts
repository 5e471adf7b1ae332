import type { ImagePackageConfiguration } from '../domain/internet/preset-hosts.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';

const APT_SOURCES_LIST = '/etc/apt/sources.list';
const APT_SOURCES_DIR = '/etc/apt/sources.list.d';
/** File names in apt's sources directory that apt reads (and nothing that could become a path trick). */
const SOURCE_FILE = /^[A-Za-z0-9_.-]+\.(list|sources)$/;

/**
 * The package-manager configuration of a sandbox, read at lockdown for the
 * `common-dependencies` preset: npm's `registry` setting (when npm exists) and the text of apt's
 * sources. Nothing is assumed: a missing tool or file contributes nothing.
 */
export async function readImagePackageConfiguration(
  runtime: SandboxRuntime,
  sandboxId: string,
  signal?: AbortSignal,
): Promise<ImagePackageConfiguration> {
  const out: ImagePackageConfiguration = {};
  // A fixed script (no user input); a login shell so a version manager's npm is found.
  const npm = await runtime
    .exec(sandboxId, {
      script: 'command -v npm >/dev/null 2>&1 || exit 3; npm config get registry',
      login: true,
      timeoutMs: 30_000,
      maxOutputBytes: 4096,
      ...(signal !== undefined ? { signal } : {}),
    })
    .catch(() => undefined);
  const registry = npm?.exitCode === 0 ? npm.stdout.trim().split('\n').pop()?.trim() : undefined;
  if (registry !== undefined && /^https?:\/\/\S+$/i.test(registry)) out.npmRegistry = registry;

  const texts: string[] = [];
  const read = async (path: string): Promise<void> => {
    const data = await runtime.readFile(sandboxId, path).catch(() => undefined);
    if (data !== undefined) texts.push(data.toString('utf8'));
  };
  await read(APT_SOURCES_LIST);
  const listing = await runtime
    .exec(sandboxId, {
      argv: ['ls', '-1', APT_SOURCES_DIR],
      timeoutMs: 10_000,
      maxOutputBytes: 64 * 1024,
      ...(signal !== undefined ? { signal } : {}),
    })
    .catch(() => undefined);
  if (listing?.exitCode === 0) {
    for (const name of listing.stdout.split('\n').map((n) => n.trim())) {
      if (SOURCE_FILE.test(name)) await read(`${APT_SOURCES_DIR}/${name}`);
    }
  }
  if (texts.length > 0) out.aptSources = texts.join('\n');
  return out;
}
