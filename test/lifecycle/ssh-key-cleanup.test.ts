import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bundleSshRepository } from '../../src/lifecycle/checkout.js';
import { PullRequestService } from '../../src/services/pull-request-service.js';

/**
 * An environment's ssh key is on the host only for the length of one operation: every failure
 * after it was written (a clone that fails, a process that exits mid-push) leaves nothing in the
 * temporary directory (issue 21, 9).
 */

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----';
/** An ssh remote on a loopback port nothing listens on: the connection is refused at once. */
const DEAD_REMOTE = 'ssh://git@127.0.0.1:1/acme/svc.git';

const made: string[] = [];
let savedTmp: string | undefined;
afterEach(() => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, made this process's TMPDIR for the test. */
function privateTmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-keytmp-'));
  made.push(dir);
  savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return dir;
}

describe('ssh key directories on failure paths', () => {
  it('a push whose clone fails after the key was written leaves nothing behind', async () => {
    const tmp = privateTmp();
    const service = new PullRequestService({
      githubApiUrl: 'http://127.0.0.1:1',
      githubRemotes: {},
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: false,
      // The dead remote is on loopback: allowed, so the push gets as far as writing the key.
      addressPolicy: { allow: ['127.0.0.1/32'] },
    });
    const error = await service
      .open({
        taskId: 'task_sshfail',
        repository: DEAD_REMOTE,
        base: 'main',
        baseCommit: 'a'.repeat(40),
        diff: 'diff --git a/x b/x\nnew file mode 100644\nindex 0000000..e69de29\n',
        commitMessage: 'x',
        title: 'x',
        body: 'x',
        draft: false,
        credentials: { username: 'git', password: KEY },
      })
      .catch((e: unknown) => e);
    expect(String((error as Error).message)).toContain('could not clone');
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a checkout fetch that fails after the key was written leaves nothing behind', async () => {
    const tmp = privateTmp();
    const error = await bundleSshRepository(DEAD_REMOTE, {
      credentials: { username: 'git', password: KEY },
    }).catch((e: unknown) => e);
    expect(String((error as Error).message)).toContain('could not fetch');
    expect(readdirSync(tmp)).toEqual([]);
  });

  // The built module (dist/, as the CLI tests use it): a process of its own that ends mid-operation.
  const built = resolve(import.meta.dirname, '../../dist/lifecycle/ssh-key-session.js');

  it.each([
    ['process.exit during the operation', 'process.exit(3);'],
    ['an uncaught error during the operation', "throw new Error('boom');"],
  ])('a process that ends by %s leaves no key behind', (_name, ending) => {
    expect(existsSync(built)).toBe(true);
    const tmp = mkdtempSync(join(tmpdir(), 'berth-keytmp-'));
    made.push(tmp);
    const script = `
      const { SshKeySession } = await import(${JSON.stringify(built)});
      const session = await SshKeySession.open('git@example.test:x.git', { username: 'git', password: ${JSON.stringify(KEY)} });
      const { readdirSync } = await import('node:fs');
      process.stdout.write(readdirSync(${JSON.stringify(tmp)}).join(',') + '\\n');
      ${ending}
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, TMPDIR: tmp },
      encoding: 'utf8',
    });
    // The key directory existed while the operation ran, and is gone once the process ended.
    expect(child.stdout).toMatch(/^berth-ssh-\d+-/);
    expect(child.status).not.toBe(0);
    expect(readdirSync(tmp)).toEqual([]);
  });
});
