import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A throwaway PostgreSQL cluster for tests: Debian's `postgresql` binaries, a fresh data
 * directory, listening on a Unix socket only (no TCP at all), C locale. As root it runs as the
 * `postgres` user (PostgreSQL refuses to run as root).
 */

export interface PostgresServer {
  socketDir: string;
  user: string;
  /** Creates an empty database and returns its name. */
  createDatabase(): Promise<string>;
  stop(): void;
}

/** The newest installed PostgreSQL's bin directory, or undefined when none is installed. */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter(
      (v) =>
        existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')),
    )
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

function asPostgresUser(): {
  wrap: (cmd: string, args: string[]) => [string, string[]];
  uid?: number;
  gid?: number;
} {
  if (process.getuid?.() !== 0) return { wrap: (cmd, args) => [cmd, args] };
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { wrap: (cmd, args) => ['runuser', ['-u', 'postgres', '--', cmd, ...args]], uid, gid };
}

export function startPostgres(bin: string): PostgresServer {
  const dir = mkdtempSync(join(tmpdir(), 'berth-pg-'));
  const data = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  const user = 'berth';
  const runAs = asPostgresUser();
  execFileSync('mkdir', ['-p', socketDir]);
  if (runAs.uid !== undefined && runAs.gid !== undefined) {
    chownSync(dir, runAs.uid, runAs.gid);
    chownSync(socketDir, runAs.uid, runAs.gid);
  }
  const run = (cmd: string, args: string[]) => {
    const [c, a] = runAs.wrap(join(bin, cmd), args);
    execFileSync(c, a, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  };
  run('initdb', ['-D', data, '-U', user, '-A', 'trust', '--locale=C', '-E', 'UTF8', '--no-sync']);
  run('pg_ctl', [
    '-D',
    data,
    '-w',
    '-l',
    join(dir, 'postgres.log'),
    '-o',
    `-k ${socketDir} -c listen_addresses= -c fsync=off -c full_page_writes=off`,
    'start',
  ]);
  let counter = 0;
  return {
    socketDir,
    user,
    async createDatabase() {
      const name = `berth_test_${process.pid}_${++counter}`;
      const client = new pg.Client({ host: socketDir, user, database: 'postgres' });
      await client.connect();
      try {
        await client.query(`create database ${name}`);
      } finally {
        await client.end();
      }
      return name;
    },
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-w', '-m', 'fast', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
