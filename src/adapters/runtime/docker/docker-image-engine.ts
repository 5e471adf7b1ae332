import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { BerthError } from '../../../errors/berth-error.js';
import type { ImageEngine } from '../../../images/image-engine.js';

interface ProgressEvent {
  stream?: string;
  status?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

/** ImageEngine over the Docker Engine API: import a root file system, build a Dockerfile. */
export class DockerImageEngine implements ImageEngine {
  private readonly docker: Docker;

  constructor(options: { socketPath?: string } = {}) {
    this.docker = new Docker({
      socketPath: options.socketPath ?? '/var/run/docker.sock',
      version: 'v1.41',
    });
  }

  async imageId(ref: string): Promise<string | undefined> {
    return (await this.inspect(ref))?.Id;
  }

  async imageLabels(ref: string): Promise<Record<string, string> | undefined> {
    const info = await this.inspect(ref);
    return info === undefined ? undefined : (info.Config.Labels ?? {});
  }

  private async inspect(ref: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(ref).inspect();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw unavailable(error, `inspect image ${ref}`);
    }
  }

  async importRootfs(
    rootfsTar: Readable,
    options: { ref: string; labels: Record<string, string>; signal?: AbortSignal },
  ): Promise<string> {
    const [repo, tag] = splitRef(options.ref);
    const stream = await this.docker
      .importImage(rootfsTar, {
        repo,
        tag,
        changes: Object.entries(options.labels).map(([k, v]) => `LABEL ${k}=${JSON.stringify(v)}`),
        ...(options.signal !== undefined ? { abortSignal: options.signal } : {}),
      })
      .catch((error: unknown) => {
        throw unavailable(error, `import ${options.ref}`);
      });
    await this.follow(stream, () => undefined);
    const id = await this.imageId(options.ref);
    if (id === undefined)
      throw new BerthError('internal', `importing ${options.ref} produced no image`);
    return id;
  }

  async build(
    context: Readable,
    options: {
      ref: string;
      buildArgs: Record<string, string>;
      labels: Record<string, string>;
      onProgress: (line: string) => void;
      signal?: AbortSignal;
      dockerfile?: string;
      networkMode?: string;
      memoryBytes?: number;
      cpuQuota?: number;
    },
  ): Promise<string> {
    const stream = await this.docker
      .buildImage(context, {
        t: options.ref,
        buildargs: options.buildArgs,
        labels: options.labels,
        rm: true,
        forcerm: true,
        ...(options.dockerfile !== undefined ? { dockerfile: options.dockerfile } : {}),
        ...(options.networkMode !== undefined ? { networkmode: options.networkMode } : {}),
        ...(options.memoryBytes !== undefined
          ? { memory: options.memoryBytes, memswap: options.memoryBytes }
          : {}),
        ...(options.cpuQuota !== undefined
          ? { cpuperiod: 100_000, cpuquota: options.cpuQuota }
          : {}),
        ...(options.signal !== undefined ? { abortSignal: options.signal } : {}),
      })
      .catch((error: unknown) => {
        throw unavailable(error, `build ${options.ref}`);
      });
    await this.follow(stream, options.onProgress);
    const id = await this.imageId(options.ref);
    if (id === undefined)
      throw new BerthError('internal', `building ${options.ref} produced no image`);
    return id;
  }

  private follow(stream: NodeJS.ReadableStream, onProgress: (line: string) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      let failure: string | undefined;
      this.docker.modem.followProgress(
        stream,
        (error: Error | null) => {
          if (error !== null) reject(unavailable(error, 'follow the engine'));
          else if (failure !== undefined)
            reject(new BerthError('internal', `image build failed: ${failure}`));
          else resolve();
        },
        (event: ProgressEvent) => {
          if (event.error !== undefined) failure = event.errorDetail?.message ?? event.error;
          const text =
            event.stream ??
            event.error ??
            (event.status !== undefined ? `${event.status} ${event.progress ?? ''}` : undefined);
          if (text !== undefined && text.trim() !== '') onProgress(text.replace(/\n$/, ''));
        },
      );
    });
  }
}

function splitRef(ref: string): [string, string] {
  const match = /^(.*?)(?::([^:/]+))?$/.exec(ref);
  return [match?.[1] ?? ref, match?.[2] ?? 'latest'];
}

function unavailable(error: unknown, what: string): BerthError {
  if (error instanceof BerthError) return error;
  const code = (error as { code?: string }).code;
  if (code === 'ECONNREFUSED' || code === 'ENOENT') {
    return new BerthError(
      'runtime_unavailable',
      `could not ${what}: the Docker engine is not reachable`,
      {},
      { cause: error },
    );
  }
  if (error instanceof Error && error.name === 'AbortError') {
    return new BerthError('cancelled', `cancelled: ${what}`, {}, { cause: error });
  }
  return new BerthError(
    'internal',
    `could not ${what}: ${error instanceof Error ? error.message : String(error)}`,
    {},
    { cause: error },
  );
}
