import type { Readable } from 'node:stream';

/**
 * What the image builder needs from a container engine. Implemented by DockerImageEngine
 * (src/adapters/runtime/docker); kept apart from SandboxRuntime because only the builder uses it.
 */
export interface ImageEngine {
  /** The image id for a reference, or undefined when there is no such image. */
  imageId(ref: string): Promise<string | undefined>;
  imageLabels(ref: string): Promise<Record<string, string> | undefined>;
  /** Imports a root file system tar as an image; returns its id. */
  importRootfs(
    rootfsTar: Readable,
    options: { ref: string; labels: Record<string, string>; signal?: AbortSignal },
  ): Promise<string>;
  /** Builds a Dockerfile from a tar context; returns the image id. */
  build(
    context: Readable,
    options: {
      ref: string;
      buildArgs: Record<string, string>;
      labels: Record<string, string>;
      onProgress: (line: string) => void;
      signal?: AbortSignal;
      /** The Dockerfile's name in the context (default `Dockerfile`). */
      dockerfile?: string;
      /** The build containers' network (`none` for an untrusted Dockerfile: dockerfile-image.ts). */
      networkMode?: string;
      memoryBytes?: number;
      /** CPU time per 100 ms period, in microseconds. */
      cpuQuota?: number;
    },
  ): Promise<string>;
}
