import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { GitCredentials } from './checkout.js';
import { BerthError } from '../errors/berth-error.js';

/**
 * An environment's ssh private key, made usable by the host's git for one operation (a clone for
 * the checkout, the push of a pull request) and gone afterwards.
 *
 * Threat model: the key belongs to the environment and is used on the orchestrator's host only,
 * never in a sandbox. It is written to a 0600 file in a fresh 0700 directory for the length of the
 * operation and deleted in `close()`, which every caller runs in a `finally` around everything after
 * `open` (a failing step included); a process that ends with a session still open (an uncaught
 * error, `process.exit` during a push) deletes its directories on the way out. ssh runs with no configuration of the operator's (`-F
 * /dev/null`, no agent, no other identity, no global known hosts), so neither the operator's keys
 * nor their settings can stand in for the environment's. Host keys: the environment's pinned
 * `knownHosts` (strict), else the file of keys trusted on first use (`knownHostsFile`; a changed
 * key fails), else a temporary file (trusted for this operation only). The directory's name
 * carries the orchestrator's pid: a key left behind by one that was killed outright (SIGKILL, a
 * crash of the machine) is deleted by the next session opened on this machine
 * (`sweepOrphanedKeyDirs`).
 */
export class SshKeySession {
  private constructor(
    private readonly dir: string,
    /** For the git processes that talk to the remote: GIT_SSH_COMMAND and GIT_SSH_VARIANT. */
    readonly env: Record<string, string>,
  ) {}

  static async open(
    url: string,
    credentials: GitCredentials | undefined,
    knownHostsFile?: string,
  ): Promise<SshKeySession> {
    const key = credentials?.password;
    if (key === undefined || key.trim() === '') {
      throw new BerthError(
        'invalid_input',
        `the ssh repository ${url} needs a private key: name a secret holding it in repository.credentials.secret`,
        { reason: 'checkout' },
      );
    }
    sweep ??= sweepOrphanedKeyDirs().catch(() => 0);
    await sweep;
    const dir = await mkdtemp(join(tmpdir(), `${KEY_DIR_PREFIX}${process.pid}-`));
    trackOpenDir(dir);
    try {
      const keyFile = join(dir, 'key');
      await writeFile(keyFile, key.endsWith('\n') ? key : `${key}\n`, { mode: 0o600 });
      const pinned = credentials?.knownHosts;
      let knownHosts: string;
      if (pinned !== undefined) {
        knownHosts = join(dir, 'known_hosts');
        await writeFile(knownHosts, pinned.endsWith('\n') ? pinned : `${pinned}\n`, {
          mode: 0o600,
        });
      } else {
        knownHosts = knownHostsFile ?? join(dir, 'known_hosts');
        await mkdir(dirname(knownHosts), { recursive: true, mode: 0o700 });
      }
      const ssh = [
        'ssh',
        '-F /dev/null',
        `-i ${shellWord(keyFile)}`,
        '-o IdentitiesOnly=yes',
        '-o IdentityAgent=none',
        '-o BatchMode=yes',
        '-o ConnectTimeout=30',
        '-o GlobalKnownHostsFile=/dev/null',
        `-o UserKnownHostsFile=${shellWord(knownHosts)}`,
        `-o StrictHostKeyChecking=${pinned !== undefined ? 'yes' : 'accept-new'}`,
      ].join(' ');
      return new SshKeySession(dir, { GIT_SSH_COMMAND: ssh, GIT_SSH_VARIANT: 'ssh' });
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      openDirs.delete(dir);
      throw error;
    }
  }

  /** Deletes the key (and a temporary host-key file). */
  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    openDirs.delete(this.dir);
  }
}

/** This process's key directories not closed yet: deleted when the process exits. */
const openDirs = new Set<string>();
let exitHookInstalled = false;

function trackOpenDir(dir: string): void {
  openDirs.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' runs on process.exit, an uncaught error and the end of the event loop (not SIGKILL:
  // the next session's sweep takes those).
  process.once('exit', () => {
    for (const open of openDirs) rmSync(open, { recursive: true, force: true });
    openDirs.clear();
  });
}

const KEY_DIR_PREFIX = 'berth-ssh-';
/** `berth-ssh-PID-XXXXXX`, as `open` names them. */
const KEY_DIR_NAME = new RegExp(`^${KEY_DIR_PREFIX}(\\d+)-[^/]+$`);
/** Once per process: the first session sweeps what dead orchestrators left. */
let sweep: Promise<number> | undefined;

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes key directories (`berth-ssh-PID-XXXXXX`) whose orchestrator process is gone, and
 * returns how many. Directories of live processes, and names without a pid, are left alone.
 */
export async function sweepOrphanedKeyDirs(parent = tmpdir()): Promise<number> {
  let removed = 0;
  for (const name of await readdir(parent)) {
    const pid = KEY_DIR_NAME.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || processIsAlive(Number(pid))) continue;
    await rm(join(parent, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** A word for `GIT_SSH_COMMAND` (run by a shell): the path in single quotes. */
function shellWord(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
