import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { BerthError } from '../errors/berth-error.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import { debianSourcesFor, debootstrapMirror, renderDeb822 } from './apt-sources.js';
import { type HostPackageSettings, readHostPackageSettings } from './host-package-settings.js';
import type { ImageEngine } from './image-engine.js';

export const BASE_IMAGE_NAMES = ['minimal', 'universal'] as const;
export type BaseImageName = (typeof BASE_IMAGE_NAMES)[number];

/** The image an environment's `image: universal|minimal` runs on. */
export function imageRefFor(name: string): string {
  if (!(BASE_IMAGE_NAMES as readonly string[]).includes(name)) {
    throw new BerthError(
      'invalid_environment',
      `unknown base image "${name}"; use one of: ${BASE_IMAGE_NAMES.join(', ')}`,
      {
        field: 'image',
      },
    );
  }
  return `berth/${name}:latest`;
}

/** The repository's images/ folder (works from src/ and from dist/). */
export const IMAGES_DIR = fileURLToPath(new URL('../../images/', import.meta.url));

export interface ImageBuilderOptions {
  engine: ImageEngine;
  /** `debootstrap`: make the Debian base locally (no registry needed). `registry`: `debian:<suite>`. */
  baseSource: 'debootstrap' | 'registry';
  suite?: string;
  imagesDir?: string;
  /** Where debootstrap makes the root file system; default: the system's temp folder. */
  workDir?: string;
  /** The host settings to carry into images; read from this machine by default. */
  hostSettings?: HostPackageSettings;
}

export interface BuildOptions {
  onProgress: (line: string) => void;
  signal?: AbortSignal;
}

export interface BuiltImage {
  ref: string;
  id: string;
}

/**
 * Builds Berth's base images on this machine. With no registry, a Debian root file system is made
 * with `debootstrap --variant=minbase` from the host's own mirror and imported once as
 * `berth-base:<suite>` (kept: later builds skip debootstrap while the mirror is unchanged); the
 * Dockerfiles under images/ are then built with BASE set to it. The host's apt sources, npm
 * registry and extra CA certificates go into every image (see docs/runtime.md).
 */
export class ImageBuilder {
  private readonly suite: string;
  private readonly imagesDir: string;
  private settings: HostPackageSettings | undefined;

  constructor(private readonly options: ImageBuilderOptions) {
    this.suite = options.suite ?? 'bookworm';
    this.imagesDir = options.imagesDir ?? IMAGES_DIR;
    this.settings = options.hostSettings;
  }

  async hostSettings(): Promise<HostPackageSettings> {
    this.settings ??= await readHostPackageSettings();
    return this.settings;
  }

  /** The base image reference for builds: imported from debootstrap or the registry's Debian. */
  async ensureBase(options: BuildOptions): Promise<string> {
    if (this.options.baseSource === 'registry') return `debian:${this.suite}`;
    const ref = `berth-base:${this.suite}`;
    const settings = await this.hostSettings();
    const mirror = debootstrapMirror(settings.aptSources, this.suite);
    if (mirror === undefined) {
      throw new BerthError(
        'invalid_input',
        `no Debian mirror for ${this.suite} found in this host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/); add one or use baseSource "registry"`,
      );
    }
    const mirrorKey = createHash('sha256')
      .update(`${this.suite} ${mirror}`)
      .digest('hex')
      .slice(0, 16);
    const existing = await this.options.engine.imageLabels(ref);
    if (existing?.['berth.base.key'] === mirrorKey) {
      options.onProgress(`using ${ref} (debootstrap already done)`);
      return ref;
    }
    const workDir = this.options.workDir ?? os.tmpdir();
    await mkdir(workDir, { recursive: true });
    const dir = await mkdtemp(path.join(workDir, 'berth-rootfs-'));
    try {
      options.onProgress(
        `debootstrap --variant=minbase ${this.suite} (mirror from the host's apt sources)`,
      );
      await runStreaming('debootstrap', ['--variant=minbase', this.suite, dir, mirror], options);
      // Leave apt lists and downloaded packages out of the image.
      await rm(path.join(dir, 'var/cache/apt/archives'), { recursive: true, force: true });
      await mkdir(path.join(dir, 'var/cache/apt/archives/partial'), { recursive: true });
      options.onProgress(`importing the root file system as ${ref}`);
      const tar = spawn('tar', ['-C', dir, '--numeric-owner', '-cf', '-', '.'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const tarDone = exitOf(tar, 'tar');
      const imported = this.options.engine.importRootfs(tar.stdout, {
        ref,
        labels: {
          [BERTH_LABELS.managed]: 'true',
          [BERTH_LABELS.kind]: 'base',
          'berth.base.suite': this.suite,
          'berth.base.key': mirrorKey,
        },
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
      await Promise.all([tarDone, imported]);
      return ref;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Builds `berth/<name>:latest` from images/<name>/Dockerfile on the base. */
  async build(name: BaseImageName, options: BuildOptions): Promise<BuiltImage> {
    const ref = imageRefFor(name);
    const base = await this.ensureBase(options);
    const baseId = (await this.options.engine.imageId(base)) ?? base;
    const context = await this.context(path.join(this.imagesDir, name));
    options.onProgress(`building ${ref} from images/${name}/Dockerfile on ${base}`);
    const id = await this.options.engine.build(Readable.from([context]), {
      ref,
      buildArgs: { BASE: base },
      labels: {
        [BERTH_LABELS.managed]: 'true',
        [BERTH_LABELS.kind]: 'base',
        'berth.image': name,
        'berth.base.id': baseId,
      },
      onProgress: options.onProgress,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    return { ref, id };
  }

  /** The build context: the image's folder plus berth-host/ (the host's package settings). */
  async context(imageDir: string, extra: Record<string, Buffer> = {}): Promise<Buffer> {
    const files: Record<string, Buffer> = {};
    for (const name of await listFiles(imageDir)) {
      files[name] = await readFile(path.join(imageDir, name));
    }
    for (const [name, content] of Object.entries(
      hostSettingsFiles(await this.hostSettings(), this.suite),
    )) {
      files[`berth-host/${name}`] = content;
    }
    Object.assign(files, extra);
    return tarOf(files);
  }
}

/** The files under berth-host/ in a build context. */
export function hostSettingsFiles(
  settings: HostPackageSettings,
  suite: string,
): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    'apply-before.sh': Buffer.from(APPLY_BEFORE),
    'apply-after.sh': Buffer.from(APPLY_AFTER),
  };
  const sources = debianSourcesFor(settings.aptSources, suite);
  if (sources.length > 0) files['apt/berth.sources'] = Buffer.from(renderDeb822(sources));
  for (const ca of settings.extraCaCertificates) {
    files[`ca/${ca.name.replace(/[^A-Za-z0-9._-]/g, '_')}`] = Buffer.from(ca.pem);
  }
  if (settings.npmRegistry !== undefined) {
    files.npmrc = Buffer.from(
      `registry=${settings.npmRegistry}\ncafile=/etc/ssl/certs/ca-certificates.crt\n`,
    );
  }
  return files;
}

/** Before any package is fetched: use the host's Debian mirror, stage its extra CAs. */
const APPLY_BEFORE = `set -eu
H=/etc/berth-host
if [ -f "$H/apt/berth.sources" ]; then
  rm -f /etc/apt/sources.list
  find /etc/apt/sources.list.d -maxdepth 1 \\( -name '*.list' -o -name '*.sources' \\) -delete
  cp "$H/apt/berth.sources" /etc/apt/sources.list.d/berth.sources
fi
if ls "$H"/ca/*.crt >/dev/null 2>&1; then
  mkdir -p /usr/local/share/ca-certificates/berth-host
  cp "$H"/ca/*.crt /usr/local/share/ca-certificates/berth-host/
fi
`;

/** After packages are in: trust the extra CAs everywhere, point npm at the host's registry. */
const APPLY_AFTER = `set -eu
H=/etc/berth-host
if command -v update-ca-certificates >/dev/null 2>&1; then update-ca-certificates >/dev/null; fi
if [ -f "$H/npmrc" ]; then
  cp "$H/npmrc" /etc/npmrc
  mkdir -p /usr/etc && ln -sf /etc/npmrc /usr/etc/npmrc
fi
`;

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  } catch (error) {
    throw new BerthError('not_found', `image folder ${dir} is missing`, {}, { cause: error });
  }
  const out: string[] = [];
  for (const entry of entries) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

export async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) {
    pack.entry(
      {
        name,
        size: content.length,
        mode: name.endsWith('.sh') ? 0o755 : 0o644,
        mtime: new Date(0),
      },
      content,
    );
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Runs a command, streaming its output lines to onProgress; kills it on abort. */
export function runStreaming(
  command: string,
  args: string[],
  options: BuildOptions,
): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onAbort = (): void => {
    child.kill('SIGTERM');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const lines = (stream: NodeJS.ReadableStream): void => {
    let rest = '';
    stream.on('data', (chunk: Buffer) => {
      rest += chunk.toString('utf8');
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) if (line.trim() !== '') options.onProgress(line);
    });
    stream.on('end', () => {
      if (rest.trim() !== '') options.onProgress(rest);
    });
  };
  lines(child.stdout);
  lines(child.stderr);
  return exitOf(child, command).finally(() =>
    options.signal?.removeEventListener('abort', onAbort),
  );
}

function exitOf(child: ReturnType<typeof spawn>, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('error', (error) =>
      reject(
        new BerthError('internal', `could not run ${name}: ${error.message}`, {}, { cause: error }),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else if (signal !== null)
        reject(new BerthError('cancelled', `${name} was stopped (${signal})`));
      else reject(new BerthError('internal', `${name} failed with exit code ${String(code)}`));
    });
  });
}
