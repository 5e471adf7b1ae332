import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { GitHttpServer } from '../support/git-http-server.js';
import {
  addEnvironment,
  closeTaskQueueWorld,
  commandScheduler,
  openTaskQueueWorld,
  runCommandOnce,
  type TaskQueueWorld,
} from './task-queue-support.js';

/**
 * `repository.config` of an http repository through the real scheduler (issue 16 item 1): the
 * attempt reads the file at the default branch's head before the cache key, fetched on the host
 * with the environment's repository token and the operator's BERTH_SETUP_ALLOW (the scheduler's
 * `defaultBranch.allow`, as the orchestrator passes it). A bad file fails the attempt there, before
 * any sandbox, with the field path, line and column; without the allow the loopback server is
 * never asked.
 */

const TOKEN = 'SECRET-TOKEN-5190';
const USER = 'x-access-token';
const instance = `repofile-remote-${process.pid}`;
const runtime = new DockerRuntime({ instance });
let world: TaskQueueWorld;
let dir: string;
let server: GitHttpServer;
let environmentId: string;

beforeAll(async () => {
  world = await openTaskQueueWorld('repofile-remote');
  dir = mkdtempSync(join(tmpdir(), 'berth-repofile-remote-'));
  const served = join(dir, 'served', 'r.git');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', served]);
  const work = join(dir, 'work');
  execFileSync('git', ['init', '-q', '-b', 'main', work]);
  mkdirSync(join(work, '.berth'));
  writeFileSync(join(work, '.berth', 'environment.yaml'), 'setup: echo x\nsetpu: typo\n');
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args]);
  git('add', '-A');
  git('commit', '-qm', 'bad file');
  git('push', '-q', served, 'main');
  server = new GitHttpServer(join(dir, 'served'), USER, TOKEN);
  await server.start('127.0.0.1');
  environmentId = await addEnvironment(world.store, {
    name: 'repofile-remote-env',
    repository: {
      url: server.url('r.git'),
      defaultBranch: 'main',
      config: '.berth/environment.yaml',
      credentials: { secret: 'GIT_TOKEN', username: USER },
    },
    secrets: ['GIT_TOKEN'],
  } as unknown as Parameters<typeof addEnvironment>[1]);
});

afterAll(async () => {
  await server.stop();
  await closeTaskQueueWorld(world, instance);
  rmSync(dir, { recursive: true, force: true });
});

describe('repository.config of an http repository, through the scheduler', () => {
  it('is fetched with the token where the operator allows, and a bad file fails before any sandbox', async () => {
    const queue = commandScheduler(world, runtime, {
      openSecrets: () => Promise.resolve({ GIT_TOKEN: TOKEN }),
      defaultBranch: { allowLocalRepositories: false, allow: ['127.0.0.1/32'] },
    });
    const { status, log } = await runCommandOnce(queue, world.store, {
      environmentId,
      command: 'true',
      ref: {},
    });
    expect(status).toBe('failed');
    expect(log).toMatch(
      /repository file \.berth\/environment\.yaml: setpu: not a field of a repository file .*\(line 2, column 1\)/,
    );
    expect(server.seen.authorized).toBeGreaterThan(0);
    expect(log).not.toContain(TOKEN);
  });

  it('is not fetched from loopback without the allow', async () => {
    const before = server.requests.length;
    const queue = commandScheduler(world, runtime, {
      openSecrets: () => Promise.resolve({ GIT_TOKEN: TOKEN }),
    });
    const { status, log } = await runCommandOnce(queue, world.store, {
      environmentId,
      command: 'true',
      ref: {},
    });
    expect(status).toBe('failed');
    expect(log).toContain('BERTH_SETUP_ALLOW');
    expect(server.requests.length).toBe(before);
  });
});
