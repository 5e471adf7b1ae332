/**
 * Threat model. The `common-dependencies` preset allows the npm registry and the apt mirrors that
 * an image names. That widens the allowlist, so what is read must be the environment owner's
 * choice, never the agent's nor the repository's: it is read from the image the attempt started
 * from (the cache entry's image, written right after setup; or the base image), never from a
 * sandbox an agent has run in, and npm runs from `/`, so a repository's `.npmrc` (project config)
 * is never read. Images are immutable: a read is kept per image id.
 */
import type { ImagePackageConfiguration } from '../domain/internet/preset-hosts.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import { BERTH_LABELS } from '../runtime/labels.js';

/**
 * The label a cache image carries with its package configuration as read on the building sandbox
 * right after setup (JSON of `ImagePackageConfiguration`; `{}` when it names nothing).
 */
export const PACKAGE_CONFIGURATION_LABEL = 'berth.egress.package-configuration';

/**
 * A fixed script (no user input), run in a login shell (a version manager's npm is found) from
 * `/` (npm's project config is `/.npmrc`, the image's own, never the repository's): npm's
 * `registry` setting on the first line, then apt's sources (`sources.list`, and the `.list` and
 * `.sources` files apt reads from its directory), each followed by an empty line.
 */
const READ_SCRIPT = [
  'cd / || exit 1',
  'registry=',
  'if command -v npm >/dev/null 2>&1; then registry=$(npm config get registry 2>/dev/null | tail -n 1); fi',
  'printf "npm-registry %s\\n" "$registry"',
  'for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do',
  '  case "${f##*/}" in sources.list | *.list | *.sources) ;; *) continue ;; esac',
  '  [ -f "$f" ] || continue',
  '  cat "$f"; printf "\\n\\n"',
  'done',
].join('\n');

/**
 * The package-manager configuration of a sandbox that no agent has run in: npm's `registry`
 * setting (when npm exists) and the text of apt's sources. Nothing is assumed: a missing tool or
 * file contributes nothing. One exec.
 */
export async function readPackageConfiguration(
  runtime: SandboxRuntime,
  sandboxId: string,
  signal?: AbortSignal,
): Promise<ImagePackageConfiguration> {
  const result = await runtime.exec(sandboxId, {
    script: READ_SCRIPT,
    login: true,
    workdir: '/',
    timeoutMs: 60_000,
    maxOutputBytes: 256 * 1024,
    ...(signal !== undefined ? { signal } : {}),
  });
  if (result.exitCode !== 0 || result.omittedBytes > 0) return {};
  const newline = result.stdout.indexOf('\n');
  const first = newline < 0 ? result.stdout : result.stdout.slice(0, newline);
  const rest = newline < 0 ? '' : result.stdout.slice(newline + 1);
  const out: ImagePackageConfiguration = {};
  const registry = /^npm-registry (\S*)\s*$/.exec(first)?.[1];
  if (registry !== undefined && /^https?:\/\/\S+$/i.test(registry)) out.npmRegistry = registry;
  if (rest.trim() !== '') out.aptSources = rest;
  return out;
}

/** The configuration a cache image carries in its label; undefined when it has none (or a bad one). */
export function packageConfigurationFromLabels(
  labels: Readonly<Record<string, string>>,
): ImagePackageConfiguration | undefined {
  const raw = labels[PACKAGE_CONFIGURATION_LABEL];
  if (raw === undefined) return undefined;
  try {
    const value = JSON.parse(raw) as unknown;
    if (typeof value !== 'object' || value === null) return undefined;
    const { npmRegistry, aptSources } = value as Record<string, unknown>;
    const out: ImagePackageConfiguration = {};
    if (typeof npmRegistry === 'string') out.npmRegistry = npmRegistry;
    if (typeof aptSources === 'string') out.aptSources = aptSources;
    return out;
  } catch {
    return undefined;
  }
}

/** The label that records `config` on an image. */
export function packageConfigurationLabels(
  config: ImagePackageConfiguration,
): Record<string, string> {
  return { [PACKAGE_CONFIGURATION_LABEL]: JSON.stringify(config) };
}

/**
 * Reads an image's package configuration in a short-lived sandbox made from it (no network), then
 * removes that sandbox. `labels` tie it to the attempt that asked (for the reaper).
 */
export async function readImagePackageConfiguration(
  runtime: SandboxRuntime,
  image: string,
  labels: Record<string, string>,
  signal?: AbortSignal,
): Promise<ImagePackageConfiguration> {
  const sandbox = await runtime.create({
    image,
    labels: { ...labels, [BERTH_LABELS.kind]: 'sandbox' },
    resources: { cpus: 1, memoryMb: 512, pids: 256 },
    workdir: '/',
    ...(signal !== undefined ? { signal } : {}),
  });
  try {
    await runtime.start(sandbox.id, signal);
    return await readPackageConfiguration(runtime, sandbox.id, signal);
  } finally {
    await runtime.remove(sandbox.id).catch(() => undefined);
  }
}
