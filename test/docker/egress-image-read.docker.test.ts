import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { hostsFromImageConfiguration } from '../../src/domain/internet/preset-hosts.js';
import {
  packageConfigurationFromLabels,
  readImagePackageConfiguration,
} from '../../src/egress/read-image-package-configuration.js';
import { LanguageLayer, languageImagePreparer } from '../../src/images/language-versions.js';
import { removeInstanceContainers, removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * Reading an image's package configuration in a short-lived sandbox (the path of images without
 * the cache build's label), on a real engine and a real npm (`minimal` + node 22). The image holds
 * a repository checkout whose `.npmrc` names `evil.test`, a user `~/.npmrc` naming
 * `image-npm.test`, and apt sources: only the image's own settings count, and the sandbox is gone
 * afterwards.
 */

const instance = `egimgread-${process.pid}`;
const runtime = new DockerRuntime({ instance });
let image = '';

beforeAll(async () => {
  const signal = AbortSignal.timeout(600_000);
  const withNode = await languageImagePreparer(
    new LanguageLayer({ engine: new DockerImageEngine({}) }),
  )('minimal', lifecycleTestImage(), { node: '22' }, { signal, onProgress: () => undefined });
  const sandbox = await runtime.create({
    image: withNode,
    labels: { 'berth.kind': 'sandbox' },
    resources: { cpus: 1, memoryMb: 512, pids: 256 },
    workdir: '/workspace',
  });
  await runtime.start(sandbox.id);
  const made = await runtime.exec(sandbox.id, {
    script: [
      'set -e',
      'mkdir -p /workspace && echo "registry=http://evil.test/" > /workspace/.npmrc',
      'echo "registry=http://image-npm.test:8081/" > ~/.npmrc',
      'echo "deb http://image-apt.test/debian bookworm main" > /etc/apt/sources.list.d/image.list',
      // apt does not read this one (not .list nor .sources): it must not count either.
      'echo "deb http://ignored.test/debian bookworm main" > /etc/apt/sources.list.d/image.list.disabled',
    ].join('\n'),
    user: 'root',
  });
  expect(made.exitCode, made.output).toBe(0);
  const committed = await runtime.commit(sandbox.id, {
    repository: 'berth-test-image-read',
    tag: String(process.pid),
    labels: { 'berth.kind': 'image' },
  });
  image = committed.id;
  await runtime.remove(sandbox.id);
}, 600_000);

afterAll(() => {
  const left = removeInstanceContainers(instance);
  removeInstanceImages(instance);
  expect(left).toBe('');
});

describe('reading an image package configuration (docker)', () => {
  it("reads npm from / (the checkout's .npmrc never counts) and apt's own source files", async () => {
    const config = await readImagePackageConfiguration(runtime, image, {
      'berth.attempt': 'att_imageread',
    });
    expect(config.npmRegistry).toBe('http://image-npm.test:8081/');
    expect(hostsFromImageConfiguration(config)).toContain('image-npm.test:8081');
    expect(hostsFromImageConfiguration(config)).toContain('image-apt.test');
    const text = JSON.stringify(config);
    expect(text).not.toContain('evil.test');
    expect(text).not.toContain('ignored.test');
    // The short-lived sandbox is gone.
    expect(await runtime.list({ 'berth.attempt': 'att_imageread' })).toEqual([]);
    // The image has no label: this is the path a lockdown takes for it.
    expect(packageConfigurationFromLabels((await runtime.inspectImage(image)).labels)).toBe(
      undefined,
    );
  });
});
