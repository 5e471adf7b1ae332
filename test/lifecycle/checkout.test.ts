import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bundleLocalRepository,
  bundleSshRepository,
  parseRepositoryLocation,
  sshHostKeyNote,
  validateBranch,
  validateSha,
} from '../../src/lifecycle/checkout.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('branch and commit validation', () => {
  it('accepts ordinary names and refuses option-like or revision syntax', () => {
    expect(validateBranch('feature/x-1')).toBe('feature/x-1');
    for (const bad of [
      '-x',
      '--upload-pack=evil',
      'a..b',
      'a b',
      'x^',
      'x~1',
      'HEAD@{1}',
      'a.lock',
      '/a',
      'a/',
      '',
    ]) {
      expect(() => validateBranch(bad), bad).toThrow();
    }
  });

  it('accepts hexadecimal commits only', () => {
    expect(validateSha('ABCDEF1')).toBe('abcdef1');
    for (const bad of ['-abc', 'abc', 'HEAD', 'main', 'abcdefg'])
      expect(() => validateSha(bad), bad).toThrow();
  });
});

describe('repository locations', () => {
  it('takes credentials out of an https URL', () => {
    const loc = parseRepositoryLocation('https://bot:t%40ken@git.example/org/app.git', false);
    expect(loc).toEqual({
      kind: 'remote',
      location: 'https://git.example/org/app.git',
      credentials: { username: 'bot', password: 't@ken' },
    });
  });

  it('refuses a location starting with "-" and local paths unless allowed', () => {
    expect(() => parseRepositoryLocation('--upload-pack=touch /tmp/x', true)).toThrow(
      /starts with "-"/,
    );
    expect(() => parseRepositoryLocation('/srv/repo', false)).toThrow(/not allowed/);
    expect(parseRepositoryLocation('/srv/repo', true)).toEqual({
      kind: 'local',
      location: '/srv/repo',
    });
    expect(parseRepositoryLocation('file:///srv/repo', true)).toEqual({
      kind: 'local',
      location: '/srv/repo',
    });
    expect(parseRepositoryLocation('git://git.example/org/app.git', false).kind).toBe('remote');
  });

  it('marks ssh URLs, both forms, to be fetched on the host', () => {
    expect(parseRepositoryLocation('git@git.example:org/app.git', false)).toEqual({
      kind: 'ssh',
      location: 'git@git.example:org/app.git',
    });
    expect(parseRepositoryLocation('ssh://git@git.example:2222/org/app.git', false)).toEqual({
      kind: 'ssh',
      location: 'ssh://git@git.example:2222/org/app.git',
    });
    expect(() => parseRepositoryLocation('git@-oFoo:app.git', false)).toThrow();
    expect(() => parseRepositoryLocation('ssh://-oProxyCommand=x/app.git', false)).toThrow();
  });
});

describe('ssh repositories', () => {
  it('need a private key, and say which field names it', async () => {
    await expect(
      bundleSshRepository('git@git.example:org/app.git', { credentials: undefined }),
    ).rejects.toThrow(
      /needs a private key: name a secret holding it in repository.credentials.secret/,
    );
  });

  it("fail with ssh's own words and leave no key behind on the host", async () => {
    const before = new Set((await readdir(tmpdir())).filter((f) => f.startsWith('berth-ssh-')));
    // A port nothing listens on (the socket is closed before the fetch).
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    await expect(
      bundleSshRepository(`ssh://git@127.0.0.1:${port}/app.git`, {
        credentials: { username: 'x', password: 'not a key' },
        // Loopback is refused unless the operator allows it (checkout-ssh-address.test.ts).
        addressPolicy: { allow: ['127.0.0.1/32'] },
      }),
    ).rejects.toThrow(
      new RegExp(
        `could not fetch the ssh repository ssh://git@127\\.0\\.0\\.1:${port}/app\\.git on the host: [\\s\\S]*Connection refused`,
      ),
    );
    const after = (await readdir(tmpdir())).filter((f) => f.startsWith('berth-ssh-'));
    expect(after.filter((f) => !before.has(f))).toEqual([]);
  });

  it('say in the log how the host key is checked', () => {
    const key = { username: 'x', password: 'k' };
    expect(sshHostKeyNote({ credentials: { ...key, knownHosts: 'h ssh-ed25519 AAAA' } })).toContain(
      'checked against repository.credentials.knownHosts',
    );
    expect(
      sshHostKeyNote({ credentials: key, knownHostsFile: '/data/known_hosts/env_1' }),
    ).toContain('trusted on first use (kept in /data/known_hosts/env_1)');
  });
});

describe('local repositories', () => {
  it('are bundled on the host with every branch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-checkout-'));
    dirs.push(dir);
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' });
    git('init', '-q', '-b', 'main');
    await writeFile(join(dir, 'a.txt'), 'a\n');
    git('add', 'a.txt');
    git('-c', 'user.name=t', '-c', 'user.email=t@t.example', 'commit', '-qm', 'first');
    git('branch', 'other');
    const bundle = await bundleLocalRepository(dir);
    const file = join(dir, 'check.bundle');
    await writeFile(file, bundle);
    const heads = execFileSync('git', ['bundle', 'list-heads', file], { encoding: 'utf8' });
    expect(heads).toContain('refs/heads/main');
    expect(heads).toContain('refs/heads/other');
  });

  it('fail clearly when the path is missing', async () => {
    await expect(bundleLocalRepository('/nonexistent/berth-repo')).rejects.toThrow(
      /does not exist/,
    );
  });
});
