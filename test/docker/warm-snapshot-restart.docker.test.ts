import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { afterAll, describe, expect, it } from 'vitest';
import { BERTH_BIN, runBerth, tempDir } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Issue 20 item 13: a snapshot committed from a sandbox the warm pool started must not inherit
 * the pool's owner, or the reaper deletes it at the next server start and the follow-up fails
 * with "the snapshot … is gone". Through the built CLI against `berth serve`, restarted on the
 * same data directory and instance.
 */

const dataDir = tempDir('warm-snapshot');
const instance = `warmsnap-${randomBytes(4).toString('hex')}`;
const servers: ChildProcess[] = [];

async function serve(): Promise<{ child: ChildProcess; url: string; adminToken?: string }> {
  const child = spawn(
    process.execPath,
    [BERTH_BIN, 'serve', '--json', '--port', '0', '--data-dir', dataDir, '--allow-local-repos'],
    {
      env: {
        ...process.env,
        BERTH_URL: undefined,
        BERTH_TOKEN: undefined,
        BERTH_INSTANCE: instance,
        BERTH_CONFIG_DIR: join(dataDir, 'config'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  servers.push(child);
  const log: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => log.push(line));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) =>
      reject(new Error(`berth serve exited with ${code}: ${log.join('\n')}`)),
    );
  });
  return { child, ...(JSON.parse(first) as { url: string; adminToken?: string }) };
}

function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8' }).trim();
}

afterAll(() => {
  for (const child of servers) if (child.exitCode === null) child.kill('SIGKILL');
  const containers = docker('ps', '-aq', '--filter', `label=berth.instance=${instance}`);
  if (containers !== '')
    execFileSync('docker', ['rm', '-f', ...containers.split('\n')], { stdio: 'ignore' });
  removeInstanceImages(instance);
  rmSync(dataDir, { recursive: true, force: true });
});

interface TaskJson {
  id: string;
  status: string;
  attempts: { id: string; status: string }[];
}

describe('a snapshot of an attempt that ran in a warm sandbox (docker)', () => {
  it('carries no pool owner and its follow-up succeeds after the server restarts', async () => {
    const repo = makeSampleRepository();
    const first = await serve();
    const token = first.adminToken ?? '';
    const berth = (url: string, ...args: string[]) =>
      runBerth([...args, '--url', url, '--token', token]);
    const envFile = join(dataDir, 'warm.yaml');
    writeFileSync(
      envFile,
      `name: warm\nrepository: ${repo.dir}\nimage: ${lifecycleTestImage()}\nsetup: echo ready\n`,
    );
    const created = await berth(first.url, 'env', 'create', '--file', envFile);
    expect(created.code, created.stderr).toBe(0);
    const exec = async (command: string): Promise<TaskJson> => {
      const r = await berth(
        first.url,
        'exec',
        '--env',
        'warm',
        '--command',
        command,
        '--wait',
        '--json',
      );
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as TaskJson;
    };
    // The first builds the cache entry; the second resumes from it and fills the pool. A warm
    // sandbox is named for its owner, `berth-warm-<owner>-<random>`.
    await exec('true');
    await exec('true');
    const pooledNow = () =>
      docker(
        'ps',
        '-q',
        '--filter',
        `label=berth.instance=${instance}`,
        '--filter',
        'name=berth-warm-orch-',
      );
    await expect.poll(pooledNow, { timeout: 60_000, interval: 200 }).not.toBe('');
    const [pooled] = pooledNow().split('\n');
    const pooledLabels = JSON.parse(
      docker('inspect', '--format', '{{json .Config.Labels}}', pooled ?? ''),
    ) as Record<string, string>;
    // Not the cache builder's task and attempt, which Docker copies from the cache image.
    expect(pooledLabels).toMatchObject({ 'berth.task': '', 'berth.attempt': '' });
    expect(Object.keys(pooledLabels)).not.toContain('berth.warm-owner');
    // The running container may not be ready yet (its exec channel opening): then this attempt
    // starts its own sandbox and refills the pool, and the next one takes a warm one.
    let warm: TaskJson | undefined;
    for (let i = 0; i < 3 && warm === undefined; i++) {
      const task = await exec('echo from-the-warm-sandbox > state.txt');
      expect(task.status).toBe('succeeded');
      const logs = await berth(first.url, 'task', 'logs', task.id);
      if (logs.stdout.includes('using a sandbox started ahead of time')) warm = task;
      else await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
    if (warm === undefined) throw new Error('no attempt ran in a warm sandbox');

    const attemptId = warm.attempts[0]?.id ?? '';
    const snapshot = `berth-snapshot:${attemptId.replace(/_/g, '-')}`;
    // The snapshot is committed after the result (returnEarly, deferred to a lull): wait for it.
    await expect
      .poll(() => spawnSync('docker', ['image', 'inspect', snapshot]).status, {
        timeout: 60_000,
        interval: 250,
      })
      .toBe(0);
    const labels = JSON.parse(
      docker('image', 'inspect', '--format', '{{json .Config.Labels}}', snapshot),
    ) as Record<string, string>;
    expect(Object.keys(labels)).not.toContain('berth.warm-owner');
    expect(labels).toMatchObject({
      'berth.managed': 'true',
      'berth.instance': instance,
      'berth.kind': 'snapshot',
      'berth.task': warm.id,
      'berth.attempt': attemptId,
    });

    // Restart: the new server's reaper runs at start, with a new owner.
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGTERM');
    await exited;
    const second = await serve();
    const followUp = await berth(
      second.url,
      'task',
      'followup',
      warm.id,
      '--command',
      'cat state.txt',
      '--wait',
      '--json',
    );
    expect(followUp.code, followUp.stderr + followUp.stdout).toBe(0);
    const view = JSON.parse(followUp.stdout) as {
      attempt: string;
      attempts: { id: string; commands: { command: string; output: string }[] }[];
    };
    const turn = view.attempts.find((a) => a.id === view.attempt);
    expect(turn?.commands.find((c) => c.command === 'cat state.txt')?.output).toContain(
      'from-the-warm-sandbox',
    );
  }, 300_000);
});
