import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * A graceful stop of `berth serve` (SIGTERM) and its next start on the same data directory: an
 * attempt that had not reached the agent phase goes back to the queue and runs on the next start;
 * one in the agent phase fails with the phase it was in; neither leaves a sandbox behind.
 */

interface AttemptJson {
  id: string;
  status: string;
  phase: string;
  error: string | null;
}
interface TaskJson {
  id: string;
  status: string;
  attempts: AttemptJson[];
}

const dataDir = tempDir('graceful-stop');
const instance = `lcstop-${process.pid}`;
let repo: ReturnType<typeof makeSampleRepository>;
let server: ServeHandle | undefined;
let token = '';

/** `berth serve` on the test's own data directory (the same across restarts). */
async function serve(): Promise<ServeHandle> {
  return await startServe(['--allow-local-repos', '--data-dir', dataDir], {
    BERTH_CONFIG_DIR: join(dataDir, 'config'),
    BERTH_INSTANCE: instance,
  });
}

async function berth(...args: string[]) {
  if (server === undefined) throw new Error('no server');
  return runBerth([...args, '--url', server.url, '--token', token]);
}

async function show(taskId: string): Promise<TaskJson> {
  return JSON.parse((await berth('task', 'show', taskId, '--json')).stdout) as TaskJson;
}

async function until(what: string, check: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function sandboxesOf(attemptId: string): string {
  return execFileSync('docker', ['ps', '-aq', '--filter', `label=berth.attempt=${attemptId}`], {
    encoding: 'utf8',
  }).trim();
}

beforeAll(async () => {
  repo = makeSampleRepository();
  server = await serve();
  token = server.adminToken;
  const image = lifecycleTestImage();
  for (const [name, setup] of [
    ['slow-setup', 'echo setting up; sleep 15'],
    ['no-setup', 'true'],
  ] as const) {
    const file = join(dataDir, `${name}.yaml`);
    writeFileSync(
      file,
      `name: ${name}\nrepository: ${repo.dir}\nimage: ${image}\nsetup: |\n  ${setup}\n`,
    );
    const created = await berth('env', 'create', '--file', file);
    expect(created.code, created.stderr).toBe(0);
  }
}, 180_000);

afterAll(async () => {
  await server?.stop();
  removeInstanceImages(instance);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('a graceful stop of berth serve (docker)', () => {
  it('queues an attempt in setup again for the next start and fails one in the agent phase', async () => {
    const submit = async (env: string, command: string) =>
      JSON.parse(
        (await berth('exec', '--env', env, '--command', command, '--json')).stdout,
      ) as TaskJson;
    const inSetup = await submit('slow-setup', 'echo after-restart');
    const inAgent = await submit('no-setup', 'sleep 300');
    await until('one attempt is in setup and the other in the agent phase', async () => {
      const [a, b] = await Promise.all([show(inSetup.id), show(inAgent.id)]);
      return a.attempts[0]?.phase === 'setup' && b.attempts[0]?.phase === 'agent';
    });
    const first = server;
    if (first === undefined) throw new Error('no server');
    const exited = new Promise<number | null>((resolve) => first.child.once('exit', resolve));
    const asked = Date.now();
    first.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    console.log(`berth serve stopped in ${Date.now() - asked} ms`);
    const setupAttempt = inSetup.attempts[0]?.id ?? '';
    const agentAttempt = inAgent.attempts[0]?.id ?? '';
    // Nothing is left running, and nothing waits for a recovery.
    expect(sandboxesOf(setupAttempt)).toBe('');
    expect(sandboxesOf(agentAttempt)).toBe('');

    server = await serve();
    const failed = await show(inAgent.id);
    expect(failed.status).toBe('failed');
    expect(failed.attempts[0]?.error).toBe('the orchestrator stopped during agent');

    await until('the attempt that was in setup ran again', async () => {
      const task = await show(inSetup.id);
      return task.status === 'succeeded' || task.status === 'failed';
    });
    const rerun = await show(inSetup.id);
    const logs = await berth('task', 'logs', inSetup.id);
    expect(rerun.status, logs.stdout).toBe('succeeded');
    expect(logs.stdout).toContain(
      'the orchestrator stopped during setup; the attempt starts over on the next start',
    );
    expect(logs.stdout).toContain('after-restart');
    expect(logs.stdout).not.toContain('cancelled');
  }, 300_000);
});
