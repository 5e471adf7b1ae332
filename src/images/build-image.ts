import { DockerImageEngine } from '../adapters/runtime/docker/docker-image-engine.js';
import { type BaseImageName, type BuiltImage, ImageBuilder } from './image-builder.js';

export interface BuildImageOptions {
  runtimeSocket?: string;
  /** Default `debootstrap`: no container registry needed. */
  baseSource?: 'debootstrap' | 'registry';
  onProgress: (line: string) => void;
  signal?: AbortSignal;
}

/** `berth image build minimal|universal`: builds one of Berth's base images on the local engine. */
export async function buildImage(
  name: BaseImageName,
  options: BuildImageOptions,
): Promise<BuiltImage> {
  const engine = new DockerImageEngine(
    options.runtimeSocket !== undefined ? { socketPath: options.runtimeSocket } : {},
  );
  const builder = new ImageBuilder({ engine, baseSource: options.baseSource ?? 'debootstrap' });
  return builder.build(name, {
    onProgress: options.onProgress,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
}
