import { BerthError } from '../errors/berth-error.js';

/** Berth's own base images and the command that builds each. */
const BUILD_HINTS: Record<string, string> = {
  'berth/minimal': 'berth image build minimal',
  'berth/universal': 'berth image build universal',
};

/** The error for a missing image; for Berth's own images it names the command that builds them. */
export function imageMissing(ref: string): BerthError {
  const repository = ref.replace(/(:[^/:]*)?(@.*)?$/, '');
  const hint = BUILD_HINTS[repository];
  const message =
    hint !== undefined
      ? `image ${ref} is missing; build it with \`${hint}\``
      : `image ${ref} is missing; Berth's base images are built with \`berth image build universal\` or \`berth image build minimal\``;
  return new BerthError('image_missing', message, {
    image: ref,
    ...(hint !== undefined ? { buildCommand: hint } : {}),
  });
}
