import { execFile, spawn } from 'node:child_process';
import { posix } from 'node:path';
import { BerthError } from '../errors/berth-error.js';
import { DOCKERFILE_IMAGE_PREFIX } from '../domain/environment/environment-spec.js';
import type { ImageEngine } from '../images/image-engine.js';
import { localBranchHead, parseRepositoryLocation } from './checkout.js';
import { checkDockerfile } from './dockerfile-refusals.js';

/**
 * `image: { dockerfile: .berth/Dockerfile }` (issue 16 item 4): the environment's image built
 * from a Dockerfile in its repository, at the default branch's head, before the cache key (the
 * built image's id is the key's base image, so a changed Dockerfile or context rebuilds the cache:
 * "base image changed"). The build context is the Dockerfile's folder at that commit (`git
 * archive` of the tree: only committed files, never the working tree or `.git`). An image is
 * tagged by the environment and the context's tree id, so an unchanged folder is built once.
 *
 * Threat model. The Dockerfile is repository content (anyone who can push writes it) and its
 * `RUN` steps execute on the server's engine. They run with no network at all (`networkmode:
 * none`: only a loopback interface, so no host, metadata or private address is reachable), and
 * nothing the engine itself would fetch is allowed (`ADD <url>`, `COPY --from=<image>`, a `FROM`
 * image not already on the engine: refused before the build, dockerfile-refusals.ts), within memory and CPU limits, with the engine's
 * default confinement for build containers (which is less than a sandbox's: no Berth seccomp or
 * capability changes beyond Docker's defaults). Secrets and variables never reach the build
 * (no build arguments). The build's output goes to the attempt's log as untrusted text. Read
 * from local repositories only, like `repository.config` (others are refused when written).
 */

export interface DockerfileImage {
  /** The image reference the attempt starts from. */
  ref: string;
  /** Its content id. */
  id: string;
  commit: string;
  built: boolean;
}

/** Memory and CPU of a build's containers. */
const BUILD_MEMORY_BYTES = 4 * 1024 * 1024 * 1024;
const BUILD_CPU_QUOTA = 200_000; // two CPUs (of a 100 ms period)

function gitOut(args: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-c', 'core.fsmonitor=false', ...args],
      {
        ...(signal ? { signal } : {}),
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', GIT_TERMINAL_PROMPT: '0' },
      },
      (error, stdout) => (error ? reject(new Error(error.message)) : resolve(stdout.trim())),
    );
  });
}

function refused(path: string, message: string): BerthError {
  return new BerthError('invalid_environment', `image.dockerfile: ${path}: ${message}`, {
    issues: [{ path: 'image.dockerfile', message: `${path}: ${message}` }],
  });
}

/** The Dockerfile path of an `image` field, or undefined for an image reference. */
export function dockerfileOf(image: string): string | undefined {
  return image.startsWith(DOCKERFILE_IMAGE_PREFIX)
    ? image.slice(DOCKERFILE_IMAGE_PREFIX.length)
    : undefined;
}

/** Builds (or finds built) the environment's image from the Dockerfile in its repository. */
export async function dockerfileImage(
  engine: Pick<ImageEngine, 'imageId' | 'build'>,
  environment: {
    id: string;
    spec: { image: string; repository: { url: string; defaultBranch: string } };
  },
  options: { allowLocal: boolean; onProgress: (line: string) => void; signal?: AbortSignal },
): Promise<DockerfileImage | undefined> {
  const dockerfile = dockerfileOf(environment.spec.image);
  if (dockerfile === undefined) return undefined;
  const { url, defaultBranch } = environment.spec.repository;
  const location = parseRepositoryLocation(url, options.allowLocal);
  if (location.kind !== 'local')
    throw refused(
      dockerfile,
      'an image is built from local repositories only (not built for others)',
    );
  const commit = await localBranchHead(location.location, defaultBranch, options.signal);
  if (commit === undefined)
    throw refused(dockerfile, `the repository has no branch "${defaultBranch}" to build from`);
  const folder = posix.dirname(dockerfile);
  const name = posix.basename(dockerfile);
  const type = await gitOut([
    '-C',
    location.location,
    'cat-file',
    '-t',
    `${commit}:${dockerfile}`,
  ]).catch(() => undefined);
  if (type !== 'blob')
    throw refused(dockerfile, `not a file in the repository at commit ${commit.slice(0, 12)}`);
  const tree = await gitOut([
    '-C',
    location.location,
    'rev-parse',
    `${commit}:${folder === '.' ? '' : folder}`,
  ]);
  // Before any build: nothing the engine would fetch itself (dockerfile-refusals.ts).
  const text = await gitOut([
    '-C',
    location.location,
    'cat-file',
    'blob',
    `${commit}:${dockerfile}`,
  ]);
  const { refusals, baseImages } = checkDockerfile(text);
  for (const base of baseImages)
    if ((await engine.imageId(base.image)) === undefined)
      refusals.push({
        line: base.line,
        message: `FROM ${base.image}: not an image on the server's engine (never pulled: build or load it on the server first)`,
      });
  if (refusals.length > 0) {
    refusals.sort((a, b) => a.line - b.line);
    throw refused(dockerfile, refusals.map((r) => `line ${r.line}: ${r.message}`).join('; '));
  }
  const ref = `berth-custom/${environment.id.toLowerCase().replace(/[^a-z0-9]/g, '-')}:${tree.slice(0, 16)}`;
  const existing = await engine.imageId(ref);
  if (existing !== undefined) return { ref, id: existing, commit, built: false };

  // The context: the folder's committed files at the commit, as a tar stream.
  const archive = spawn(
    'git',
    ['-c', 'core.fsmonitor=false', '-C', location.location, 'archive', '--format=tar', tree],
    {
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', GIT_TERMINAL_PROMPT: '0' },
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  try {
    const id = await engine.build(archive.stdout, {
      ref,
      buildArgs: {},
      labels: { 'berth.environment': environment.id, 'berth.dockerfile': dockerfile },
      onProgress: options.onProgress,
      dockerfile: name,
      networkMode: 'none',
      memoryBytes: BUILD_MEMORY_BYTES,
      cpuQuota: BUILD_CPU_QUOTA,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { ref, id, commit, built: true };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new BerthError('task_failed', `the image from ${dockerfile} did not build: ${reason}`, {
      reason: 'image',
    });
  } finally {
    archive.kill();
  }
}
