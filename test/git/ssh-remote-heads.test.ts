import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  pinnedAddressOptions,
  readSshRemoteHeads,
  sshHost,
  sshPort,
} from '../../src/git/ssh-remote-heads.js';
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
    ['a loopback address not allowed', 'ssh://git@127.0.0.1:1/srv/app.git', 'KEY'],
    ['a private address not allowed', 'git@10.1.2.3:acme/app.git', 'KEY'],
    ['a metadata address', 'ssh://git@169.254.169.254/srv/app.git', 'KEY'],
    ['a name a shell would read apart', "ssh://git@a.b$(id)'x.dev/srv/app.git", 'KEY'],
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

  it('asks an allowed address with the key (here a closed loopback port: no answer, so undefined)', async () => {
    const open = vi.spyOn(SshKeySession, 'open');
    const heads = await readSshRemoteHeads('ssh://git@127.0.0.1:1/srv/app.git', {
      credentials: { username: 'git', password: 'not a key' },
      allow: ['127.0.0.1/32'],
    });
    expect(heads).toBeUndefined();
    expect(open).toHaveBeenCalledTimes(1);
  });

  it('pins the vetted address and keeps known_hosts names as ssh writes them', () => {
    expect(sshPort('ssh://git@git.acme.dev:2222/acme/app.git')).toBe(2222);
    expect(sshPort('ssh://git@git.acme.dev/acme/app.git')).toBe(22);
    expect(sshPort('git@git.acme.dev:acme/app.git')).toBe(22);
    expect(pinnedAddressOptions('Git.Acme.dev', 2222, '203.0.113.9')).toBe(
      "-o 'HostName=203.0.113.9' -o 'HostKeyAlias=[git.acme.dev]:2222' -o CheckHostIP=no",
    );
    expect(pinnedAddressOptions('git.acme.dev', 22, '2001:db8::1')).toBe(
      "-o 'HostName=2001:db8::1' -o 'HostKeyAlias=git.acme.dev' -o CheckHostIP=no",
    );
  });
});
