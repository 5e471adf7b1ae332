import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/** Runs the real `berth` binary (bin/berth.js over dist/) as a user would. */
export const BERTH_BIN = resolve(import.meta.dirname, '../../bin/berth.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `berth args` (from the directory `cwd` when given) with `input` on its stdin. */
export function runBerth(
  args: string[],
  env: Record<string, string | undefined> = {},
  input?: string,
  cwd?: string,
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BERTH_BIN, ...args], {
      ...(cwd === undefined ? {} : { cwd }),
      env: { ...process.env, BERTH_URL: undefined, BERTH_TOKEN: undefined, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `berth-${prefix}-`));
}

export interface ServeHandle {
  url: string;
  adminToken: string;
  dataDir: string;
  child: ChildProcess;
  /** Lines the server wrote to stderr (its structured log). */
  logLines: string[];
  stop(): Promise<void>;
}

/** Starts `berth serve --json --port 0` and waits for its first line. */
export async function startServe(
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<ServeHandle> {
  const dataDir = tempDir('data');
  const child = spawn(
    process.execPath,
    [BERTH_BIN, 'serve', '--json', '--port', '0', '--data-dir', dataDir, ...extraArgs],
    {
      env: {
        ...process.env,
        BERTH_LOG_LEVEL: 'debug',
        BERTH_CONFIG_DIR: join(dataDir, 'config'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logLines: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => logLines.push(line));
  const first = await new Promise<string>((resolveLine, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', resolveLine);
    child.once('exit', (code) =>
      reject(new Error(`berth serve exited with ${code}: ${logLines.join('\n')}`)),
    );
  });
  const parsed = JSON.parse(first) as { url: string; adminToken: string };
  return {
    url: parsed.url,
    adminToken: parsed.adminToken,
    dataDir,
    child,
    logLines,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
