import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { AttemptRunner } from '../../src/lifecycle/attempt-runner.js';
import { CommandAgent } from '../../src/lifecycle/command-agent.js';
import { dockerfileImage } from '../../src/lifecycle/dockerfile-image.js';
import { NoNetworkEnforcer } from '../../src/lifecycle/network-policy-enforcer.js';
import { Scheduler } from '../../src/lifecycle/scheduler.js';
import { countConnections } from '../support/connection-counter.js';
import {
  addEnvironment,
  closeTaskQueueWorld,
  commitBerthFiles,
  openTaskQueueWorld,
  runCommandOnce,
  type TaskQueueWorld,
} from './task-queue-support.js';

/**
 * `image: { dockerfile: .berth/Dockerfile }` through the real scheduler and engine (issue 16, Show):
 * the image is built from the repository's Dockerfile at the default branch's head (its output in
 * the attempt's log), the task runs in it, an unchanged folder is not built again (cache hit), a
 * commit that changes the folder builds again and rebuilds the cache ("base image changed"). The
 * build has no network: the Dockerfile checks that only a loopback interface exists, so the build
 * fails if the build containers get one (the old code's engine default).
 */

const instance = `dockerfile-${process.pid}`;
const runtime = new DockerRuntime({ instance });
let world: TaskQueueWorld;
let environmentId: string;

async function runOnce(): Promise<{ status: string; log: string }> {
  const runner = new AttemptRunner({
    runtime,
    cache: world.store,
    enforcer: new NoNetworkEnforcer(),
    resolveImage: (name) => (name === 'minimal' ? world.image : name),
    cacheTtlMs: 3600_000,
    snapshotTtlMs: 3600_000,
    allowLocalRepositories: true,
  });
  const queue = new Scheduler({
    store: world.store,
    runner,
    runtime,
    imageEngine: new DockerImageEngine({}),
    openSecrets: () => Promise.resolve({}),
    agentFor: (task) => new CommandAgent(task.command ?? 'true'),
    concurrency: 1,
    pollMs: 100,
  });
  return await runCommandOnce(queue, world.store, {
    environmentId,
    command: 'cat /etc/berth-custom-marker',
    ref: {},
  });
}

beforeAll(async () => {
  world = await openTaskQueueWorld('dockerfile');
  mkdirSync(join(world.repo.dir, '.berth'));
  commitBerthFiles(
    world,
    {
      Dockerfile: [
        `FROM ${world.image}`,
        'RUN [ "$(ls /sys/class/net)" = "lo" ] || { echo "the build has a network: $(ls /sys/class/net)"; exit 1; }',
        'COPY marker.txt /etc/berth-custom-marker',
        '',
      ].join('\n'),
      'marker.txt': 'custom image one\n',
    },
    'image',
  );
  environmentId = await addEnvironment(world.store, {
    name: 'dockerfile-env',
    repository: world.repo.dir,
    image: { dockerfile: '.berth/Dockerfile' },
  });
});

afterAll(async () => {
  const images = execFileSync(
    'docker',
    ['images', '-q', '--filter', `label=berth.environment=${environmentId}`],
    { encoding: 'utf8' },
  )
    .split('\n')
    .filter(Boolean);
  for (const image of new Set(images))
    try {
      execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  await closeTaskQueueWorld(world, instance);
});

describe('image: { dockerfile }', () => {
  it('is built without a network and used; built again only when the folder changes', async () => {
    const first = await runOnce();
    expect(first.status, first.log).toBe('succeeded');
    expect(first.log).toMatch(/Step \d+\/\d+ : COPY marker\.txt/);
    expect(first.log).toMatch(
      /image berth-custom\/[a-z0-9-]+:[0-9a-f]{16} \(sha256:[0-9a-f]{64}\) built from \.berth\/Dockerfile at [0-9a-f]{12}/,
    );
    expect(first.log).toMatch(/^custom image one$/m);

    const second = await runOnce();
    expect(second.status, second.log).toBe('succeeded');
    expect(second.log).toMatch(/already built from \.berth\/Dockerfile/);
    expect(second.log).toMatch(/^cache hit/m);

    commitBerthFiles(world, { 'marker.txt': 'custom image two\n' }, 'image');
    const third = await runOnce();
    expect(third.status, third.log).toBe('succeeded');
    expect(third.log).toMatch(/ built from \.berth\/Dockerfile/);
    expect(third.log).toMatch(/cache miss: cache rebuilt because: base image changed/);
    expect(third.log).toMatch(/^custom image two$/m);
  });

  it('refuses ADD <url> and a FROM image not on the engine before any build (review 5)', async () => {
    // The engine (on the host's network) would fetch both from this loopback listener.
    const listener = await countConnections();
    const port = listener.port;
    const repo = mkdtempSync(join(tmpdir(), 'berth-dockerfile-refused-'));
    try {
      const git = (...args: string[]) =>
        execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args]);
      git('init', '-q', '-b', 'main');
      mkdirSync(join(repo, '.berth'));
      writeFileSync(
        join(repo, '.berth', 'Dockerfile'),
        [
          `FROM ${world.image}`,
          `ADD http://127.0.0.1:${port}/secret /secret`,
          `FROM 127.0.0.1:${port}/evil/img:1`,
          '',
        ].join('\n'),
      );
      git('add', '-A');
      git('commit', '-qm', 'evil');
      const outcome = await dockerfileImage(
        new DockerImageEngine({}),
        {
          id: `env_refused${process.pid}`,
          spec: {
            image: 'dockerfile:.berth/Dockerfile',
            repository: { url: repo, defaultBranch: 'main' },
          },
        },
        { allowLocal: true, onProgress: () => undefined },
      ).then(
        () => 'built',
        (error: Error) => error.message,
      );
      expect(listener.count(), outcome).toBe(0);
      expect(outcome).toMatch(/line 2: ADD http:\/\/127\.0\.0\.1:\d+\/secret: a URL/);
      expect(outcome).toMatch(/line 3: FROM 127\.0\.0\.1:\d+\/evil\/img:1: .*build or load it/);
    } finally {
      await listener.close();
      rmSync(repo, { recursive: true, force: true });
    }
  }, 120_000);
});
