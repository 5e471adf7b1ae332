import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { ImageBuilder } from '../../src/images/image-builder.js';

let building: Promise<string> | undefined;

/**
 * The image the runtime tests run on: Berth's `minimal` image, built with the product's own
 * builder when missing (the first build runs debootstrap and takes a few minutes; later builds
 * reuse the imported base). BERTH_TEST_IMAGE may name another Debian image with perl-base.
 */
export function testImage(): Promise<string> {
  building ??= (async () => {
    const override = process.env.BERTH_TEST_IMAGE;
    if (override !== undefined && override !== '') return override;
    const engine = new DockerImageEngine();
    const ref = 'berth/minimal:latest';
    if ((await engine.imageId(ref)) !== undefined) return ref;
    const builder = new ImageBuilder({ engine, baseSource: 'debootstrap' });
    await builder.build('minimal', { onProgress: () => undefined });
    return ref;
  })();
  return building;
}
