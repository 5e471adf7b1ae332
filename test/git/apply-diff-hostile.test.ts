import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import { applyDiff } from '../../src/git/apply-diff.js';
import { readDiffHeaders } from '../../src/git/diff-headers.js';

/**
 * Hand-made diffs that `berth task apply` (and every reader of diff-headers.ts) must refuse with
 * nothing written, from the review after issue 21 item 1: paths that differ only in bytes that
 * are not UTF-8, a git repository planted without any `.git` path, a file written where the
 * checkout ignores it, a path below a symlink the same diff makes (named in another case), and
 * `.git` spelled as NTFS reads it. Each on a real git checkout.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=T', '-c', 'user.email=t@e', ...args], {
    encoding: 'utf8',
  });
}

/** A repository with `files` committed, and a clone of it: the clone, the base commit. */
function checkout(
  files: Record<string, string> = {},
  raw: Buffer[] = [],
): {
  work: string;
  base: string;
} {
  const origin = mkdtempSync(join(tmpdir(), 'berth-adh-'));
  dirs.push(origin);
  git(origin, 'init', '-q', '-b', 'main');
  writeFileSync(join(origin, 'README'), 'x\n');
  for (const [name, content] of Object.entries(files)) writeFileSync(join(origin, name), content);
  for (const name of raw)
    writeFileSync(Buffer.concat([Buffer.from(`${origin}/`), name]), 'shown\n');
  git(origin, 'add', '-A');
  git(origin, 'commit', '-qm', 'base');
  const base = git(origin, 'rev-parse', 'HEAD').trim();
  const work = mkdtempSync(join(tmpdir(), 'berth-adh-clone-'));
  dirs.push(work);
  execFileSync('git', ['clone', '-q', origin, work]);
  return { work, base };
}

/** A section adding `path` with `lines`. */
function added(path: string, lines: string[], mode = '100644'): string[] {
  return [
    `diff --git a/${path} b/${path}`,
    `new file mode ${mode}`,
    'index 0000000..1111111',
    '--- /dev/null',
    `+++ b/${path}`,
    `@@ -0,0 +1,${lines.length} @@`,
    ...lines.map((l) => `+${l}`),
  ];
}

async function refusal(promise: Promise<unknown>): Promise<BerthError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BerthError);
  return error as BerthError;
}

describe('hand-made diffs task apply refuses', () => {
  it('a +++ path that differs from its diff --git line only in bytes that are not UTF-8', async () => {
    const { work, base } = checkout({}, [
      Buffer.from([0xff, 0xfe, 0x78]),
      Buffer.from([0x80, 0x81, 0x78]),
    ]);
    const diff = [
      'diff --git "a/\\377\\376x" "b/\\377\\376x"',
      'index 1111111..2222222 100644',
      '--- "a/\\200\\201x"',
      '+++ "b/\\200\\201x"',
      '@@ -1 +1 @@',
      '-shown',
      '+written by the diff',
      '',
    ].join('\n');
    expect(() => readDiffHeaders(diff)).toThrow(/differs from its diff --git line/);
    const error = await refusal(applyDiff({ cwd: work, diff, baseCommit: base }));
    expect(error.code).toBe('invalid_input');
    const other = Buffer.concat([Buffer.from(`${work}/`), Buffer.from([0x80, 0x81, 0x78])]);
    expect(readFileSync(other, 'utf8')).toBe('shown\n');
    // A diff --git line naming two paths that differ only so, and an unquoted name that is not UTF-8.
    expect(() =>
      readDiffHeaders(
        'diff --git "a/\\377x" "b/\\376x"\nnew file mode 100644\nindex 0000000..e69de29\n',
      ),
    ).toThrow(/naming two paths/);
    expect(() =>
      readDiffHeaders(
        'diff --git a/\ufffdx b/\ufffdx\nnew file mode 100644\nindex 0000000..e69de29\n',
      ),
    ).toThrow(/not UTF-8/);
  });

  it('names git quotes still apply, UTF-8 or not (compared as bytes)', async () => {
    const { work, base } = checkout();
    const names = [Buffer.from('ünï.txt'), Buffer.from([0xff, 0xfe, 0x78])];
    for (const name of names)
      writeFileSync(Buffer.concat([Buffer.from(`${work}/`), name]), 'new\n');
    git(work, 'add', '-A');
    const diff = git(work, 'diff', '--cached', '--binary', base);
    git(work, 'reset', '-q', '--hard');
    git(work, 'clean', '-qfd');
    expect(diff).toContain('"b/\\377\\376x"');
    expect((await applyDiff({ cwd: work, diff, baseCommit: base })).mode).toBe('clean');
    for (const name of names)
      expect(readFileSync(Buffer.concat([Buffer.from(`${work}/`), name]), 'utf8')).toBe('new\n');
  });

  it('a git repository planted without any .git path (HEAD, config, objects/, refs/)', async () => {
    const { work, base } = checkout();
    const marker = join(work, '..', `planted-ran-${process.pid}`);
    dirs.push(marker);
    const diff = [
      ...added('test/fixtures/repo/HEAD', ['ref: refs/heads/main']),
      ...added('test/fixtures/repo/config', [
        '[core]',
        '\trepositoryformatversion = 0',
        '\tbare = false',
        '\tworktree = .',
        `\tfsmonitor = "echo ran > ${marker}; false"`,
      ]),
      ...added('test/fixtures/repo/objects/info/keep', ['']),
      ...added('test/fixtures/repo/refs/heads/keep', ['']),
      '',
    ].join('\n');
    expect(() => readDiffHeaders(diff)).toThrow(/look like a git repository/);
    const error = await refusal(applyDiff({ cwd: work, diff, baseCommit: base }));
    expect(error.message).toContain('"test/fixtures/repo"');
    expect(existsSync(join(work, 'test'))).toBe(false);
    // Case variants (a case-insensitive file system) and a commondir in place of objects/ refs/.
    const variant = [
      ...added('x/Head', ['ref: refs/heads/main']),
      ...added('x/commondir', ['../../.git']),
      '',
    ].join('\n');
    expect(() => readDiffHeaders(variant)).toThrow(/look like a git repository/);
    // objects and refs as executable files pass git's access(X_OK) test too.
    const files = [
      ...added('y/HEAD', ['ref: refs/heads/main']),
      ...added('y/objects', ['x'], '100755'),
      ...added('y/refs', ['x'], '100755'),
      '',
    ].join('\n');
    expect(() => readDiffHeaders(files)).toThrow(/look like a git repository/);
    // HEAD alone, or objects/ and refs/ without HEAD, is not a repository.
    const alone = [
      ...added('z/HEAD', ['x']),
      ...added('w/objects/a', ['x']),
      ...added('w/refs/b', ['x']),
      '',
    ];
    expect(readDiffHeaders(alone.join('\n')).sections).toHaveLength(3);
  });

  it('a diff that completes a git repository with what the checkout has (objects/ and refs/ there)', async () => {
    const { work, base } = checkout();
    git(work, 'init', '-q', '--bare', 'fixture.git');
    rmSync(join(work, 'fixture.git', 'HEAD'));
    writeFileSync(join(work, 'fixture.git', 'objects', 'keep'), '');
    writeFileSync(join(work, 'fixture.git', 'refs', 'keep'), '');
    git(work, 'add', '-f', 'fixture.git');
    git(work, 'commit', '-qm', 'fixture without HEAD');
    const head = git(work, 'rev-parse', 'HEAD').trim();
    const diff = [...added('fixture.git/HEAD', ['ref: refs/heads/main']), ''].join('\n');
    expect(readDiffHeaders(diff).sections).toHaveLength(1);
    const error = await refusal(applyDiff({ cwd: work, diff, baseCommit: head }));
    expect(error.message).toContain('look like a git repository');
    expect(existsSync(join(work, 'fixture.git', 'HEAD'))).toBe(false);
    expect(base).not.toBe(head);
  });

  it('an executable written where the checkout ignores it (node_modules/.bin/jest)', async () => {
    const { work, base } = checkout({ '.gitignore': 'node_modules/\n' });
    const diff = [
      ...added('node_modules/.bin/jest', ['#!/bin/sh', 'echo pwned'], '100755'),
      '',
    ].join('\n');
    const error = await refusal(applyDiff({ cwd: work, diff, baseCommit: base }));
    expect(error.code).toBe('invalid_input');
    expect(error.message).toContain('"node_modules/.bin/jest", which this checkout ignores');
    expect(existsSync(join(work, 'node_modules'))).toBe(false);
  });

  it("a path below a symlink the checkout has: refused by the ignore check with git's reason", async () => {
    const { work, base } = checkout();
    const outside = mkdtempSync(join(tmpdir(), 'berth-adh-link-'));
    dirs.push(outside);
    symlinkSync(outside, join(work, 'link'));
    const diff = [...added('link/x.txt', ['through the link']), ''].join('\n');
    const error = await refusal(applyDiff({ cwd: work, diff, baseCommit: base }));
    expect(error.code).toBe('invalid_input');
    expect(error.message).toContain('beyond a symbolic link');
    expect(existsSync(join(outside, 'x.txt'))).toBe(false);
  });

  it('a tracked file that matches an ignore pattern is not refused (Berth diffs have those)', async () => {
    const { work, base } = checkout({ '.gitignore': 'vendor/\n' });
    execFileSync('mkdir', [join(work, 'vendor')]);
    writeFileSync(join(work, 'vendor', 'lib.js'), 'old\n');
    git(work, 'add', '-f', 'vendor/lib.js');
    git(work, 'commit', '-qm', 'vendored');
    const head = git(work, 'rev-parse', 'HEAD').trim();
    writeFileSync(join(work, 'vendor', 'lib.js'), 'new\n');
    git(work, 'add', '-A');
    const diff = git(work, 'diff', '--cached', '--binary', head);
    git(work, 'reset', '-q', '--hard');
    expect(diff).toContain('vendor/lib.js');
    expect((await applyDiff({ cwd: work, diff, baseCommit: head })).mode).toBe('clean');
    expect(readFileSync(join(work, 'vendor', 'lib.js'), 'utf8')).toBe('new\n');
    expect(base).not.toBe(head);
  });

  it('a file hidden by a .gitignore the same diff changes: applied, then taken back', async () => {
    const { work, base } = checkout({ '.gitignore': 'dist/\n' });
    const diff = [
      'diff --git a/.gitignore b/.gitignore',
      'index 1111111..2222222 100644',
      '--- a/.gitignore',
      '+++ b/.gitignore',
      '@@ -1 +1,2 @@',
      ' dist/',
      '+tools/',
      ...added('tools/run.sh', ['#!/bin/sh', 'echo pwned'], '100755'),
      '',
    ].join('\n');
    const error = await refusal(applyDiff({ cwd: work, diff, baseCommit: base }));
    expect(error.message).toContain('"tools/run.sh", which this checkout ignores');
    expect(error.message).toContain('it was taken back');
    expect(existsSync(join(work, 'tools', 'run.sh'))).toBe(false);
    expect(readFileSync(join(work, '.gitignore'), 'utf8')).toBe('dist/\n');
  });

  it('a path below a symlink the same diff creates, named in another case (Docs -> outside, docs/x)', async () => {
    const { work, base } = checkout();
    const outside = mkdtempSync(join(tmpdir(), 'berth-adh-outside-'));
    dirs.push(outside);
    const diff = [
      'diff --git a/Docs b/Docs',
      'new file mode 120000',
      'index 0000000..1111111',
      '--- /dev/null',
      '+++ b/Docs',
      '@@ -0,0 +1 @@',
      `+${outside}`,
      '\\ No newline at end of file',
      ...added('docs/pwned.txt', ['written outside the checkout']),
      '',
    ].join('\n');
    expect(() => readDiffHeaders(diff)).toThrow(/below a symlink the same diff creates/);
    await refusal(applyDiff({ cwd: work, diff, baseCommit: base }));
    expect(existsSync(join(work, 'Docs'))).toBe(false);
    expect(existsSync(join(work, 'docs'))).toBe(false);
    expect(existsSync(join(outside, 'pwned.txt'))).toBe(false);
  });

  it('.git as NTFS reads it: a stream suffix, trailing dots and spaces, a backslash', () => {
    for (const path of [
      '.git::$INDEX_ALLOCATION/config',
      '.GIT:stream/hooks/pre-commit',
      '.git. .::$INDEX_ALLOCATION/x',
      'sub\\.git\\config',
      'git~1:x/config',
    ]) {
      expect(() => readDiffHeaders([...added(path, ['x']), ''].join('\n')), path).toThrow(
        /inside \.git/,
      );
    }
    expect(readDiffHeaders([...added('docs/a:b.txt', ['x']), ''].join('\n')).sections).toHaveLength(
      1,
    );
  });
});
