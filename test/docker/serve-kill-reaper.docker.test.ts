import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { afterAll, describe, expect, it } from 'vitest';
import { BERTH_BIN, runBerth, tempDir } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * The orchestrator killed outright (SIGKILL: no shutdown code runs) while an attempt's sandbox is
 * running; a new `berth serve` on the same data directory and instance recovers the attempt once
 * its lease runs out (30 s) and nothing labelled with the instance is left on the engine.
 */

interface Server {
  child: ChildProcess;
  url: string;
  adminToken: string | undefined;
  log: string[];
}

const dataDir = tempDir('serve-kill');
const instance = `kill-${randomBytes(4).toString('hex')}`;
const servers: ChildProcess[] = [];

/** `berth serve` on this test's data directory and instance; resolves on its first line. */
async function serve(): Promise<Server> {
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
        BERTH_LOG_LEVEL: 'debug',
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
  const parsed = JSON.parse(first) as { url: string; adminToken?: string };
  return { child, url: parsed.url, adminToken: parsed.adminToken, log };
}

/** What the engine holds with this instance's label: containers and networks. */
function leftOnEngine(): { containers: string[]; networks: string[] } {
  const list = (...args: string[]) =>
    execFileSync('docker', args, { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '');
  return {
    containers: list('ps', '-aq', '--filter', `label=berth.instance=${instance}`),
    networks: list('network', 'ls', '-q', '--filter', `label=berth.instance=${instance}`),
  };
}

interface AttemptJson {
  id: string;
  status: string;
  phase: string;
  error: string | null;
  errorCode: string | null;
  errorDetails: Record<string, unknown> | null;
}
interface TaskJson {
  id: string;
  status: string;
  attempts: AttemptJson[];
}

afterAll(() => {
  for (const child of servers) if (child.exitCode === null) child.kill('SIGKILL');
  // Whatever a failed run left behind.
  const { containers, networks } = leftOnEngine();
  if (containers.length > 0) execFileSync('docker', ['rm', '-f', ...containers]);
  if (networks.length > 0) execFileSync('docker', ['network', 'rm', ...networks]);
  removeInstanceImages(instance);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('berth serve killed mid-attempt (docker)', () => {
  it('the next berth serve recovers the attempt and leaves no container or network of the instance', async () => {
    const image = lifecycleTestImage();
    const repo = makeSampleRepository();
    const first = await serve();
    expect(first.adminToken).toBeDefined();
    const auth = ['--url', first.url, '--token', first.adminToken ?? ''];
    const envFile = join(dataDir, 'svc.yaml');
    writeFileSync(envFile, `name: svc\nrepository: ${repo.dir}\nimage: ${image}\n`);
    const created = await runBerth(['env', 'create', '--file', envFile, ...auth]);
    expect(created.code, created.stderr).toBe(0);

    const submitted = await runBerth([
      'exec',
      '--env',
      'svc',
      '--command',
      'sleep 300',
      '--json',
      ...auth,
    ]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const taskId = (JSON.parse(submitted.stdout) as TaskJson).id;
    const show = async (url: string): Promise<TaskJson> => {
      const r = await runBerth([
        'task',
        'show',
        taskId,
        '--json',
        '--url',
        url,
        '--token',
        first.adminToken ?? '',
      ]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as TaskJson;
    };
    await expect
      .poll(async () => (await show(first.url)).attempts[0]?.phase, {
        timeout: 120_000,
        interval: 300,
      })
      .toBe('agent');
    const running = leftOnEngine();
    expect(running.containers.length).toBeGreaterThan(0);
    expect(running.networks.length).toBeGreaterThan(0);

    // The orchestrator dies without a chance to clean up: its sandbox and network stay.
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    const afterKill = leftOnEngine();
    expect(afterKill.containers).toEqual(expect.arrayContaining(running.containers));
    expect(afterKill.networks).toEqual(expect.arrayContaining(running.networks));

    // A new orchestrator on the same data directory and instance (the admin token is stored).
    const second = await serve();
    expect(second.adminToken).toBeUndefined();
    // The attempt's lease (30 s, renewed every 10 s) must run out before it is taken over; the
    // recovery pass then runs at most one lease period later.
    await expect
      .poll(() => leftOnEngine(), { timeout: 150_000, interval: 1_000 })
      .toEqual({ containers: [], networks: [] });

    // The reaper may clear the engine before the lease runs out; the attempt is failed then.
    await expect
      .poll(async () => (await show(second.url)).status, { timeout: 150_000, interval: 1_000 })
      .toBe('failed');
    const task = await show(second.url);
    expect(task.attempts[0]).toMatchObject({
      status: 'failed',
      phase: 'failed',
      errorCode: 'task_failed',
      error:
        'taken over during agent: its orchestrator stopped renewing the lease (killed, restarted or not answering)',
      errorDetails: { reason: 'orchestrator_restart', phase: 'agent' },
    });
    expect(second.log.join('\n')).toContain(
      'attempt failed: taken over from an orchestrator that stopped renewing its lease',
    );
  }, 300_000);
});
