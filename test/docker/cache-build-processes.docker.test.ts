import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunLocalResult } from '../../src/lifecycle/run-local.js';
import { BERTH_BIN } from '../support/cli.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Two `berth run` processes on one data directory (one SQLite file), a real engine: the process
 * that claimed the cache build is killed (SIGKILL) in the middle of its setup script; the other
 * waits for it, sees its lease run out (30 s), builds the entry itself, and both its attempts
 * succeed from that one build. No half-made entry is ever used.
 */

const instance = `cbp-${process.pid}`;
let repo: ReturnType<typeof makeSampleRepository>;
let dir: string;
const children: ChildProcess[] = [];

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function berthRun(envFile: string): { child: ChildProcess; done: Promise<Finished> } {
  const child = spawn(
    process.execPath,
    [
      BERTH_BIN,
      'run',
      '--env-file',
      envFile,
      '--command',
      'cat /root/build-id',
      '--attempts',
      '2',
      '--json',
      '--data-dir',
      join(dir, 'data'),
    ],
    {
      env: { ...process.env, BERTH_INSTANCE: instance, BERTH_URL: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Finished>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

function query<T>(sql: string, ...params: unknown[]): T[] {
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new BetterSqlite3(join(dir, 'data', 'berth.db'), { readonly: true, timeout: 5_000 });
    return db.prepare(sql).all(...params) as T[];
  } catch {
    return []; // not made or not migrated yet
  } finally {
    db?.close();
  }
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(() => {
  lifecycleTestImage();
  repo = makeSampleRepository();
  dir = mkdtempSync(join(tmpdir(), 'berth-cache-processes-'));
});

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  // What the killed process left (its sandbox and network), then every image of this instance.
  const left = execFileSync(
    'docker',
    ['ps', '-aq', '--filter', `label=berth.instance=${instance}`],
    { encoding: 'utf8' },
  ).trim();
  if (left !== '') execFileSync('docker', ['rm', '-f', ...left.split('\n')], { stdio: 'ignore' });
  const networks = execFileSync(
    'docker',
    ['network', 'ls', '-q', '--filter', `label=berth.instance=${instance}`],
    { encoding: 'utf8' },
  ).trim();
  if (networks !== '')
    execFileSync('docker', ['network', 'rm', ...networks.split('\n')], { stdio: 'ignore' });
  removeInstanceImages(instance);
  rmSync(dir, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('two berth run processes on one SQLite file', () => {
  it('survive the death of the one building the cache: the other takes the build over', async () => {
    const envFile = join(dir, 'env.yaml');
    writeFileSync(
      envFile,
      [
        'name: shared-processes',
        `repository: ${repo.dir}`,
        'image: minimal',
        'setup: |',
        '  cat /proc/sys/kernel/random/uuid > /root/build-id',
        '  sleep 5',
        '',
      ].join('\n'),
    );
    const first = berthRun(envFile);
    // The second starts once the first has stored the environment (both would create it).
    await until(
      'the environment',
      () => query<{ id: string }>("select id from environments where name = 'shared-processes'")[0],
    );
    const second = berthRun(envFile);
    const runs = [first, second];

    // Whoever claimed the build: kill it in the middle of its setup script.
    const claim = await until('a cache build claim in setup', () => {
      const row = query<{ owner: string }>('select owner from cache_builds')[0];
      const attemptId = row?.owner.split('/')[1];
      const phase = query<{ phase: string }>(
        'select phase from attempts where id = ?',
        attemptId ?? '',
      )[0]?.phase;
      return row !== undefined && phase === 'setup' ? row.owner : undefined;
    });
    const pid = Number(/^orch-(\d+)-/.exec(claim)?.[1]);
    const victim = runs.find((r) => r.child.pid === pid);
    const survivor = runs.find((r) => r.child.pid !== pid);
    if (victim === undefined || survivor === undefined)
      throw new Error(`the claim ${claim} is not held by either process`);
    victim.child.kill('SIGKILL');
    expect((await victim.done).signal).toBe('SIGKILL');

    const result = await survivor.done;
    expect(result.code, result.stderr).toBe(0);
    const output = JSON.parse(result.stdout) as RunLocalResult;
    expect(output.attempts.map((a) => a.status)).toEqual(['succeeded', 'succeeded']);
    expect(output.attempts.map((a) => a.cacheHit).sort()).toEqual([false, true]);
    // Both attempts started from the survivor's one build.
    const ids = new Set(output.attempts.map((a) => a.commands[0]?.output.trim()));
    expect(ids.size).toBe(1);
    expect(result.stderr).toContain(`waiting for the cache entry that ${claim} is building`);
    expect(result.stderr).toContain(`the build of the cache entry by ${claim} stopped`);

    // One entry, recorded by the survivor; the dead builder left no entry and no claim.
    const entries = query<{ id: string }>('select id from cache_entries');
    expect(entries).toHaveLength(1);
    expect(query('select owner from cache_builds')).toEqual([]);
  }, 150_000);
});
