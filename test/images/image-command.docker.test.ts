import { describe, expect, it } from 'vitest';
import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { ImageBuilder } from '../../src/images/image-builder.js';
import { runBerth } from '../support/cli.js';

/** `berth image build`, run as a user runs it (bin/berth.js over dist/), on the real engine. */
describe('berth image build (docker)', () => {
  it('rebuilding an up-to-date image reuses the imported base and every layer: the same image', async () => {
    const engine = new DockerImageEngine();
    const ref = 'berth/minimal:latest';
    if ((await engine.imageId(ref)) === undefined) {
      await new ImageBuilder({ engine, baseSource: 'debootstrap' }).build('minimal', {
        onProgress: () => undefined,
      });
    }
    const before = await engine.imageId(ref);

    const result = await runBerth(['image', 'build', 'minimal', '--json']);
    expect(result.code, result.stderr).toBe(0);
    // stdout is the JSON result alone; progress goes to stderr.
    expect(JSON.parse(result.stdout)).toEqual({ image: ref, id: before });
    expect(result.stderr).toContain('using berth-base:bookworm (debootstrap already done)');
    expect(result.stderr).not.toMatch(/^debootstrap /m);
    expect(result.stderr).toContain('building berth/minimal:latest from images/minimal/Dockerfile');
    // Every step after FROM comes from the engine's layer cache: nothing is fetched again.
    expect(result.stderr).not.toContain('Running in');
    expect(result.stderr).toContain('Using cache');
    expect(await engine.imageId(ref)).toBe(before);
  }, 300_000);

  it('refuses an unknown image name with exit code 2, naming the ones there are', async () => {
    const human = await runBerth(['image', 'build', 'alpine']);
    expect(human.code).toBe(2);
    expect(human.stdout).toBe('');
    expect(human.stderr.trim()).toBe(
      'berth: unknown image "alpine"; use one of: minimal, universal',
    );

    const json = await runBerth(['image', 'build', 'alpine', '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({
      error: {
        code: 'invalid_input',
        message: 'unknown image "alpine"; use one of: minimal, universal',
      },
    });
  });

  it('refuses an unknown --base-source with exit code 2', async () => {
    const result = await runBerth(['image', 'build', 'minimal', '--base-source', 'ftp']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--base-source must be debootstrap or registry');
  });
});
