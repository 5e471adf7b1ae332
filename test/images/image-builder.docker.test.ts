import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { debianSourcesFor } from '../../src/images/apt-sources.js';
import { readHostPackageSettings } from '../../src/images/host-package-settings.js';
import { ImageBuilder, imageRefFor } from '../../src/images/image-builder.js';
import { testImage } from '../docker/runtime-test-image.js';

describe('ImageBuilder on Docker', () => {
  it('maps environment image names to Berth images and refuses others', () => {
    expect(imageRefFor('universal')).toBe('berth/universal:latest');
    expect(imageRefFor('minimal')).toBe('berth/minimal:latest');
    expect(() => imageRefFor('alpine')).toThrow(/unknown base image "alpine"/);
  });

  it('reuses the imported debootstrap base instead of running debootstrap again', async () => {
    await testImage(); // builds minimal (and the base) if missing
    const engine = new DockerImageEngine();
    const builder = new ImageBuilder({ engine, baseSource: 'debootstrap' });
    const progress: string[] = [];
    const started = Date.now();
    expect(await builder.ensureBase({ onProgress: (line) => progress.push(line) })).toBe(
      'berth-base:bookworm',
    );
    expect(progress).toEqual(['using berth-base:bookworm (debootstrap already done)']);
    expect(Date.now() - started).toBeLessThan(30_000);
    const labels = await engine.imageLabels('berth-base:bookworm');
    expect(labels).toMatchObject({
      'berth.managed': 'true',
      'berth.kind': 'base',
      'berth.base.suite': 'bookworm',
    });
  });

  it("carries the host's apt mirror, extra CAs and npm registry into the minimal image", async () => {
    const image = await testImage();
    const engine = new DockerImageEngine();
    expect(await engine.imageLabels(image)).toMatchObject({
      'berth.kind': 'base',
      'berth.image': 'minimal',
    });
    const host = await readHostPackageSettings();
    const runtime = new DockerRuntime({ instance: `img-${randomBytes(3).toString('hex')}` });
    const sandbox = await runtime.create({
      image,
      labels: {},
      resources: { cpus: 1, memoryMb: 128, pids: 64 },
    });
    try {
      await runtime.start(sandbox.id);
      const sources = (
        await runtime.readFile(sandbox.id, '/etc/apt/sources.list.d/berth.sources')
      ).toString();
      for (const source of debianSourcesFor(host.aptSources, 'bookworm')) {
        for (const uri of source.uris) expect(sources).toContain(`URIs: ${uri}`);
      }
      const bundle = (
        await runtime.readFile(sandbox.id, '/etc/ssl/certs/ca-certificates.crt')
      ).toString();
      const caDir = '/usr/local/share/ca-certificates';
      const hostCas = readdirSync(caDir).filter((f) => f.endsWith('.crt'));
      for (const file of hostCas) {
        const body = readFileSync(`${caDir}/${file}`, 'utf8')
          .split('\n')
          .filter((l) => l.length > 40)[1];
        expect(bundle, file).toContain(body);
      }
      const npmrc = (await runtime.readFile(sandbox.id, '/etc/npmrc')).toString();
      const registry = execFileSync('npm', ['config', 'get', 'registry'], {
        encoding: 'utf8',
      }).trim();
      expect(npmrc).toContain(`registry=${registry}\n`);
    } finally {
      await runtime.remove(sandbox.id);
    }
  });
});
