/**
 * The local image for an environment's `image` field: Berth's own images by their short names
 * (`minimal`, `universal`, built by `berth image build`), anything else as the reference given.
 */
export const BERTH_IMAGES: Readonly<Record<string, string>> = {
  minimal: 'berth/minimal:latest',
  universal: 'berth/universal:latest',
};

export function resolveImageName(name: string): string {
  return BERTH_IMAGES[name] ?? name;
}
