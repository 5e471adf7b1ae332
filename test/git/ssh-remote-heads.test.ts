import { afterEach, describe, expect, it, vi } from 'vitest';
import { readSshRemoteHeads, sshHost } from '../../src/git/ssh-remote-heads.js';
import { SshKeySession } from '../../src/lifecycle/ssh-key-session.js';

/**
 * Which ssh repositories may be asked for their default branch when an environment is written
 * (the asking itself, against a real sshd, is in test/docker/ssh-repository.docker.test.ts).
 */
describe('ssh default-branch asking', () => {
  afterEach(() => vi.restoreAllMocks());

  it('finds the host of both ssh forms', () => {
    expect(sshHost('ssh://git@git.acme.dev:2222/acme/app.git')).toBe('git.acme.dev');
    expect(sshHost('ssh://[::1]:22/srv/app.git')).toBe('::1');
    expect(sshHost('git@git.acme.dev:acme/app.git')).toBe('git.acme.dev');
    expect(sshHost('/srv/app.git')).toBeUndefined();
  });

  it.each([
    ['no key', 'ssh://git@127.0.0.1:1/srv/app.git', undefined],
    ['a host under a reserved name', 'git@git.example.test:acme/app.git', 'KEY'],
    ['localhost', 'ssh://git@localhost:22/srv/app.git', 'KEY'],
    ['a host without a dot', 'git@gitserver:acme/app.git', 'KEY'],
  ])('asks nothing with %s', async (_what, url, key) => {
    // Watched, not replaced: a session is the first step of asking (the key written for ssh).
    const open = vi.spyOn(SshKeySession, 'open');
    const heads = await readSshRemoteHeads(url, {
      credentials: key === undefined ? undefined : { username: 'git', password: key },
    });
    expect(heads).toBeUndefined();
    // Refused before any key is written, name resolved or connection made.
    expect(open).not.toHaveBeenCalled();
  });

  it('asks an address with the key (here a closed loopback port: no answer, so undefined)', async () => {
    const open = vi.spyOn(SshKeySession, 'open');
    const heads = await readSshRemoteHeads('ssh://git@127.0.0.1:1/srv/app.git', {
      credentials: { username: 'git', password: 'not a key' },
    });
    expect(heads).toBeUndefined();
    expect(open).toHaveBeenCalledTimes(1);
  });
});
