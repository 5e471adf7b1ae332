import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SshKeySession, sweepOrphanedKeyDirs } from '../../src/lifecycle/ssh-key-session.js';

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-sweep-test-'));
  made.push(dir);
  return dir;
}

/** A pid that certainly belonged to a process that has ended. */
function deadPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$']);
  return Number(child.stdout.toString().trim());
}

describe('ssh key directories', () => {
  it('sweeps the key directories of orchestrators that are gone, and only those', async () => {
    const parent = scratch();
    const dead = `berth-ssh-${deadPid()}-abc123`;
    mkdirSync(join(parent, dead), { mode: 0o700 });
    writeFileSync(join(parent, dead, 'key'), 'PRIVATE KEY', { mode: 0o600 });
    // pid 1 is alive; this process is alive; a name without a pid and other names are not ours.
    for (const name of [
      'berth-ssh-1-live01',
      `berth-ssh-${process.pid}-mine01`,
      'berth-ssh-Xy12zz',
      'other',
    ])
      mkdirSync(join(parent, name));
    expect(await sweepOrphanedKeyDirs(parent)).toBe(1);
    expect(readdirSync(parent).sort()).toEqual(
      ['berth-ssh-1-live01', `berth-ssh-${process.pid}-mine01`, 'berth-ssh-Xy12zz', 'other'].sort(),
    );
  });

  it('keeps the key in a private directory named for this process, gone after close', async () => {
    const session = await SshKeySession.open('git@example.test:x.git', {
      username: 'git',
      password: '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----',
    });
    const keyPath = /-i '([^']+)'/.exec(session.env.GIT_SSH_COMMAND ?? '')?.[1] ?? '';
    const dir = join(keyPath, '..');
    expect(dir).toMatch(new RegExp(`berth-ssh-${process.pid}-[^/]+$`));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    await session.close();
    expect(existsSync(dir)).toBe(false);
  });
});
