import { BASE_IMAGE_NAMES, imageRefFor } from '../images/image-builder.js';

/**
 * The local image for an environment's `image` field: Berth's own base images by their short
 * names (`minimal`, `universal`, built by `berth image build`), any other reference as given.
 */
export function resolveImageName(name: string): string {
  return (BASE_IMAGE_NAMES as readonly string[]).includes(name) ? imageRefFor(name) : name;
}
