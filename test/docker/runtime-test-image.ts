import { execFileSync } from 'node:child_process';

/**
 * The image the runtime tests run on: Berth's `minimal` image. Until the image builder lands,
 * BERTH_TEST_IMAGE may name another Debian image.
 */
export async function testImage(): Promise<string> {
  const image = process.env.BERTH_TEST_IMAGE ?? 'berth/minimal:latest';
  execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
  return Promise.resolve(image);
}
