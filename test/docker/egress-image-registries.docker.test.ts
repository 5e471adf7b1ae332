import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { AttemptEvent } from '../../src/domain/task/attempt-event.js';
import { LanguageLayer, languageImagePreparer } from '../../src/images/language-versions.js';
import { createOrchestrator, type Orchestrator } from '../../src/lifecycle/orchestrator.js';
import { commandFollowUp } from '../support/follow-up-attempt.js';
import { cleanUpInstance, loopbackEgress } from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';
import { addEnvironment } from './task-queue-support.js';

/**
 * The `common-dependencies` preset allows the npm registry and the apt mirrors of the image an
 * attempt started from, and nothing the repository or an agent wrote (issue 5, DESIGN §4). A real
 * orchestrator (SQLite, Docker, the egress proxy) on an image with npm (`minimal` + node 22): the
 * setup names `mirror.test` as npm's registry (allowed); the repository's own `.npmrc` names
 * `evil.test` (npm in /workspace then reports it, yet it is refused); a first turn writes
 * `~/.npmrc` and an apt source naming `agent-npm.test` and `agent-apt.test`, and its follow-up is
 * refused both. The "world" is one HTTP server on loopback that records the `Host` of every
 * request it gets: only `mirror.test` may appear there. No packet leaves the machine.
 */

const instance = `egimage-${process.pid}`;
const NAMES = ['mirror.test', 'evil.test', 'agent-npm.test', 'agent-apt.test'];
let work: string;
let store: SqliteStore;
let orchestrator: Orchestrator;
let server: http.Server;
let port = 0;
const reached: string[] = [];
const repos: string[] = [];

function repository(npmrc?: string): string {
  const repo = makeSampleRepository();
  repos.push(repo.dir);
  if (npmrc !== undefined) {
    writeFileSync(join(repo.dir, '.npmrc'), npmrc);
    const git = (...args: string[]) =>
      execFileSync(
        'git',
        ['-C', repo.dir, '-c', 'user.name=T', '-c', 'user.email=t@berth.example', ...args],
        { stdio: 'ignore' },
      );
    git('add', '.npmrc');
    git('commit', '-qm', 'project npm config');
  }
  return repo.dir;
}

beforeAll(async () => {
  const image = lifecycleTestImage();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-image-'));
  server = http.createServer((req, res) => {
    reached.push(String(req.headers.host));
    res.end(`world ${req.headers.host}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
  store = SqliteStore.open(work);
  await store.migrate();
  orchestrator = createOrchestrator({
    store,
    runtime: new DockerRuntime({ instance }),
    openSecrets: () => Promise.resolve({}),
    resolveImage: () => image,
    prepareImage: languageImagePreparer(new LanguageLayer({ engine: new DockerImageEngine({}) })),
    cacheTtlMs: 3600_000,
    snapshotTtlMs: 3600_000,
    allowLocalRepositories: true,
    concurrency: 2,
    maxAttempts: 4,
    pollMs: 100,
    egress: loopbackEgress(NAMES, [port], []),
  });
  await orchestrator.scheduler.start();
}, 300_000);

afterAll(async () => {
  await orchestrator?.scheduler.stop({ cancelRunning: true });
  await store?.close();
  server?.close();
  cleanUpInstance(instance, work, ...repos);
});

async function environment(name: string, repo: string): Promise<string> {
  return await addEnvironment(store, {
    name,
    repository: repo,
    versions: { node: '22' },
    internet: { access: 'allowlist', presets: ['common-dependencies'], domains: [] },
    // The environment owner's choice, made by setup: it is in the cache image.
    setup: `npm config set registry http://mirror.test:${port}/`,
  });
}

/** The agent-phase probe: a GET through the proxy (perl's HTTP::Tiny honours its variables) to each name. */
function fetches(): string {
  return [
    `fetch() { perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 10)->get($ARGV[0]); print "$r->{status} $r->{content}"' "$1"; echo; }`,
    ...NAMES.map((name) => `echo "${name}: $(fetch http://${name}:${port}/)"`),
  ].join('\n');
}

async function run(
  environmentId: string,
  command: string,
): Promise<{ id: string; output: string }> {
  const { task, attempts } = await orchestrator.scheduler.submit({
    environmentId,
    prompt: '',
    command,
    ref: {},
    attempts: 1,
  });
  expect((await orchestrator.scheduler.waitForTask(task.id)).status).toBe('succeeded');
  const attempt = await store.getAttempt(attempts[0]?.id ?? '');
  return { id: attempt?.id ?? '', output: attempt?.result?.commands[0]?.output ?? '' };
}

async function egressEvents(attemptId: string): Promise<AttemptEvent[]> {
  return (await store.listAttemptEvents(attemptId)).filter((e) => e.type === 'egress');
}

function expectRefused(output: string, name: string): void {
  expect(output).toMatch(
    new RegExp(
      `^${name}: 403 berth egress: GET ${name}:${port} denied: ${name} is not on the allowlist`,
      'm',
    ),
  );
}

describe('the common-dependencies preset reads registries from the image only (docker)', () => {
  it("never allows the registry of the repository's own .npmrc", async () => {
    const env = await environment(
      'eg-image-npmrc',
      repository(`registry=http://evil.test:${port}/\n`),
    );
    reached.length = 0;
    const { id, output } = await run(
      env,
      // npm in the checkout does see the project's registry: that is what must not count.
      `echo "npm-in-workspace: $(npm config get registry)"\n${fetches()}`,
    );
    expect(output).toContain(`npm-in-workspace: http://evil.test:${port}/`);
    expect(output).toMatch(new RegExp(`^mirror\\.test: 200 world mirror\\.test:${port}`, 'm'));
    expectRefused(output, 'evil.test');
    expect(reached).toEqual([`mirror.test:${port}`]);
    const denied = (await egressEvents(id)).filter((e) => e.type === 'egress' && !e.allowed);
    expect(denied.map((e) => e.type === 'egress' && `${e.host} ${e.rule}`)).toContain(
      'evil.test no-match',
    );
  });

  it('never allows a registry that an agent wrote for its follow-up', async () => {
    const env = await environment('eg-image-follow-up', repository());
    reached.length = 0;
    const first = await run(
      env,
      [
        `echo "registry=http://agent-npm.test:${port}/" > ~/.npmrc`,
        `echo "deb http://agent-apt.test:${port}/debian bookworm main" > /etc/apt/sources.list.d/agent.list`,
        `echo "written: $(cd / && npm config get registry)"`,
      ].join('\n'),
    );
    expect(first.output).toContain(`written: http://agent-npm.test:${port}/`);
    const parent = await store.getAttempt(first.id);
    const now = new Date().toISOString();
    const followUp = commandFollowUp(
      parent,
      'fetch',
      `cat /etc/apt/sources.list.d/agent.list\n${fetches()}`,
      now,
    );
    await store.addFollowUpAttempt(followUp, now);
    expect((await orchestrator.scheduler.waitForTask(followUp.taskId)).status).toBe('succeeded');
    const turn = await store.getAttempt(followUp.id);
    expect(turn?.phase, JSON.stringify(turn?.error)).toBe('succeeded');
    const output = turn?.result?.commands[0]?.output ?? '';
    // The follow-up runs in what the first turn left: its apt source is there.
    expect(output).toContain(`deb http://agent-apt.test:${port}/debian`);
    expect(output).toMatch(new RegExp(`^mirror\\.test: 200 world mirror\\.test:${port}`, 'm'));
    expectRefused(output, 'agent-npm.test');
    expectRefused(output, 'agent-apt.test');
    expectRefused(output, 'evil.test');
    expect(reached).toEqual([`mirror.test:${port}`]);
  });
});
