import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runBerth, startServe, tempDir, type CliResult, type ServeHandle } from '../support/cli.js';
import { FakeGitHub } from '../support/fake-github.js';

/** An attempt as `berth exec --json` and `berth task show --json` print it (the fields the tests read). */
export interface AttemptJson {
  id: string;
  status: string;
  error: string | null;
  followUpOf: string | null;
  message: string | null;
  turnDiff: string | null;
  snapshotImage: string | null;
  diff: string;
  baseCommit: string | null;
  verification: { command: string; exitCode: number; output: string; passed: boolean } | null;
  tokens: number | null;
}

/** A task as `berth exec --json` and `berth task show --json` print it. */
export interface TaskJson {
  id: string;
  status: string;
  picked: string | null;
  attempts: AttemptJson[];
}

/**
 * The world of the best-of-N tests: a local bare remote cloned from a sample repository, a fake
 * GitHub API that knows it as `slug`, and `berth serve` (local repositories allowed) told both.
 */
export interface BestOfNWorld {
  bare: string;
  github: FakeGitHub;
  server: ServeHandle;
  auth: string[];
  /** The CLI against the server. */
  berth(...args: string[]): Promise<CliResult>;
  /** The CLI against the server, run from a directory (for `berth task apply`). */
  berthIn(cwd: string, ...args: string[]): Promise<CliResult>;
  /** A fresh clone of the bare remote. */
  clone(prefix: string): string;
  /** Writes `yaml` to a file and creates the environment from it. */
  createEnv(prefix: string, fileName: string, yaml: string): Promise<void>;
  /** How many times the task's attempts ran setup (its log line `setup ran`). */
  setupRuns(task: { id: string; attempts: { id: string }[] }): Promise<number>;
  stop(): Promise<void>;
}

export interface BestOfNWorldOptions {
  /** Prefix of the temporary directories. */
  prefix: string;
  /** The repository the bare remote is cloned from. */
  repository: string;
  /** owner/name of the remote on the fake GitHub. */
  slug: string;
  token: string;
  /** The API base (`/api/v3` for GitHub Enterprise). */
  basePath?: string;
  serveArgs?: string[];
  serveEnv?: Record<string, string>;
}

export async function startBestOfNWorld(options: BestOfNWorldOptions): Promise<BestOfNWorld> {
  const { prefix, slug, token } = options;
  const bare = join(tempDir(`${prefix}-remote`), `${slug.split('/')[1]}.git`);
  execFileSync('git', ['clone', '-q', '--bare', options.repository, bare]);
  const github = new FakeGitHub({
    token,
    repositories: { [slug]: bare },
    ...(options.basePath === undefined ? {} : { basePath: options.basePath }),
  });
  await github.start();
  let server: ServeHandle;
  try {
    server = await startServe(['--allow-local-repos', ...(options.serveArgs ?? [])], {
      ...options.serveEnv,
      BERTH_GITHUB_TOKEN: token,
      BERTH_GITHUB_API_URL: github.url,
      BERTH_GITHUB_REMOTES: `${bare}=${slug}`,
    });
  } catch (error) {
    await github.stop();
    throw error;
  }
  const auth = ['--url', server.url, '--token', server.adminToken];
  const berth = (...args: string[]) => runBerth([...args, ...auth]);
  return {
    bare,
    github,
    server,
    auth,
    berth,
    berthIn(cwd, ...args) {
      return runBerth([...args, ...auth], {}, undefined, cwd);
    },
    clone(clonePrefix) {
      const dir = tempDir(clonePrefix);
      execFileSync('git', ['clone', '-q', bare, dir]);
      return dir;
    },
    async createEnv(filePrefix, fileName, yaml) {
      const file = join(tempDir(filePrefix), fileName);
      writeFileSync(file, yaml);
      const created = await berth('env', 'create', '--file', file);
      expect(created.code, created.stderr).toBe(0);
    },
    async setupRuns(task) {
      let setups = 0;
      for (const a of task.attempts) {
        const logs = await berth('task', 'logs', task.id, '--attempt', a.id);
        setups += logs.stdout.split('\n').filter((line) => line.includes('setup ran')).length;
      }
      return setups;
    },
    async stop() {
      await server.stop();
      await github.stop();
    },
  };
}
