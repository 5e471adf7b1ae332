import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { LanguageLayer } from '../../src/images/language-versions.js';
import { testImage } from '../docker/runtime-test-image.js';

describe('language versions on Docker', () => {
  it('installs node 22 from the npm registry into a derived image that is reused', async () => {
    const base = await testImage();
    const engine = new DockerImageEngine();
    const layer = new LanguageLayer({ engine });
    const progress: string[] = [];
    const built = await layer.prepare(
      'minimal',
      base,
      { node: '22' },
      { onProgress: (l) => progress.push(l) },
    );
    expect(built.ref).toMatch(/^berth\/lang:[0-9a-f]{20}$/);

    const again = await layer.prepare(
      'minimal',
      base,
      { node: '22' },
      { onProgress: () => undefined },
    );
    expect(again).toEqual(built);

    const runtime = new DockerRuntime({ instance: `lang-${randomBytes(3).toString('hex')}` });
    const sandbox = await runtime.create({
      image: built.ref,
      labels: {},
      resources: { cpus: 1, memoryMb: 512, pids: 256 },
    });
    try {
      await runtime.start(sandbox.id);
      const plain = await runtime.exec(sandbox.id, {
        script: 'node --version && npm --version && command -v node',
      });
      expect(plain.exitCode, plain.output).toBe(0);
      const [nodeVersion, npmVersion, nodePath] = plain.stdout.trim().split('\n');
      expect(nodeVersion).toMatch(/^v22\./);
      expect(npmVersion).toMatch(/^10\./);
      expect(nodePath).toBe(`/opt/berth/node-${nodeVersion?.slice(1)}/bin/node`);
      // Login shells too (Debian's /etc/profile resets PATH).
      const login = await runtime.exec(sandbox.id, { script: 'node --version', login: true });
      expect(login.stdout.trim()).toBe(nodeVersion);
      // npm inside uses the registry this host uses.
      const registry = await runtime.exec(sandbox.id, { script: 'npm config get registry' });
      expect(registry.stdout.trim()).toBe(
        execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim(),
      );
    } finally {
      await runtime.remove(sandbox.id);
    }
  }, 600_000);

  it('refuses node 99 naming the language and version', async () => {
    const layer = new LanguageLayer({ engine: new DockerImageEngine() });
    await expect(
      layer.prepare('minimal', await testImage(), { node: '99' }, { onProgress: () => undefined }),
    ).rejects.toMatchObject({
      code: 'invalid_environment',
      message: expect.stringContaining('node 99') as unknown,
    });
  });
});
