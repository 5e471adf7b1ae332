import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { applyDiff, checkGitReading, filesInApplyErrors } from '../../src/git/apply-diff.js';
import { runGit } from '../../src/git/run-git.js';
import { BerthError } from '../../src/errors/berth-error.js';

/** `berth task apply`'s core on real git checkouts: applies, merges three-way, or changes nothing. */

function git(dir: string, ...args: string[]): string {
  return execFileSync(
    'git',
    ['-C', dir, '-c', 'user.name=T', '-c', 'user.email=t@berth.example', ...args],
    {
      encoding: 'utf8',
    },
  );
}

let origin: string;
let base: string;
let diff: string;

function clone(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-apply-clone-'));
  execFileSync('git', ['clone', '-q', origin, dir]);
  return dir;
}

/** What a checkout looks like (status and contents), to show nothing changed. */
function state(dir: string): string {
  return (
    git(dir, 'status', '--porcelain') + readFileSync(join(dir, 'f.txt'), 'utf8') + git(dir, 'diff')
  );
}

beforeEach(() => {
  origin = mkdtempSync(join(tmpdir(), 'berth-apply-origin-'));
  git(origin, 'init', '-q', '-b', 'main');
  writeFileSync(join(origin, 'f.txt'), 'a\nb\nc\nd\ne\nf\ng\nh\n');
  git(origin, 'add', '-A');
  git(origin, 'commit', '-qm', 'base');
  base = git(origin, 'rev-parse', 'HEAD').trim();
  // The attempt's change, as results.ts makes it: b -> B, a new file.
  const work = clone();
  writeFileSync(join(work, 'f.txt'), 'a\nB\nc\nd\ne\nf\ng\nh\n');
  writeFileSync(join(work, 'new.txt'), 'new\n');
  git(work, 'add', '-A');
  diff = git(work, 'diff', '--cached', '--binary', base);
});

describe('applyDiff', () => {
  it('applies a clean diff to the working tree', async () => {
    const dir = clone();
    const outcome = await applyDiff({ cwd: dir, diff, baseCommit: base });
    expect(outcome.mode).toBe('clean');
    expect(readFileSync(join(dir, 'f.txt'), 'utf8')).toContain('B\n');
    expect(readFileSync(join(dir, 'new.txt'), 'utf8')).toBe('new\n');
  });

  it('merges three-way when the checkout moved on elsewhere in the file', async () => {
    const dir = clone();
    // Change enough lines around b that plain context no longer matches, but not b itself.
    writeFileSync(join(dir, 'f.txt'), 'a\nb\nc\nd\nE\nf\ng\nh\n');
    git(dir, 'commit', '-qam', 'moved on');
    const outcome = await applyDiff({ cwd: dir, diff, baseCommit: base });
    expect(outcome.mode).toBe('three-way');
    expect(readFileSync(join(dir, 'f.txt'), 'utf8')).toBe('a\nB\nc\nd\nE\nf\ng\nh\n');
  });

  it('on a conflict changes nothing and names the file', async () => {
    const dir = clone();
    writeFileSync(join(dir, 'f.txt'), 'a\nbb\nc\nd\ne\nf\ng\nh\n');
    git(dir, 'commit', '-qam', 'conflicting');
    const before = state(dir);
    const error = await applyDiff({ cwd: dir, diff, baseCommit: base }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BerthError);
    expect((error as BerthError).code).toBe('conflict');
    expect((error as BerthError).message).toContain('f.txt');
    expect((error as BerthError).message).toContain('nothing was changed');
    expect(state(dir)).toBe(before);
  });

  it('refuses outside a git checkout and on another repository', async () => {
    const plain = mkdtempSync(join(tmpdir(), 'berth-apply-plain-'));
    const outside = await applyDiff({ cwd: plain, diff, baseCommit: base }).catch(
      (e: unknown) => e,
    );
    expect((outside as BerthError).message).toContain('not inside a git checkout');

    const other = mkdtempSync(join(tmpdir(), 'berth-apply-other-'));
    git(other, 'init', '-q', '-b', 'main');
    writeFileSync(join(other, 'f.txt'), 'a\nb\nc\nd\ne\nf\ng\nh\n');
    git(other, 'add', '-A');
    git(other, 'commit', '-qm', 'same content, other history');
    const before = state(other);
    const foreign = await applyDiff({ cwd: other, diff, baseCommit: base }).catch(
      (e: unknown) => e,
    );
    expect((foreign as BerthError).message).toContain(`does not have commit ${base.slice(0, 12)}`);
    expect(state(other)).toBe(before);
  });

  it('refuses a diff that was cut at its size limit', async () => {
    const dir = clone();
    const before = state(dir);
    const cut = `${diff.slice(0, 40)}\n[berth: diff cut at 40 bytes of ${diff.length}]\n`;
    const error = await applyDiff({ cwd: dir, diff: cut, baseCommit: base }).catch(
      (e: unknown) => e,
    );
    expect((error as BerthError).message).toContain('the diff was cut');
    expect(state(dir)).toBe(before);
  });

  it('reads file names out of git apply complaints', () => {
    expect(
      filesInApplyErrors(
        "error: patch failed: src/a.ts:3\nerror: src/a.ts: patch does not apply\nerror: b.txt: already exists in working directory\nApplied patch to 'c.md' with conflicts.\n",
      ),
    ).toEqual(['src/a.ts', 'b.txt', 'c.md']);
  });
});

/**
 * Hand-made diffs from a hostile sandbox (issue 21, 1): `git apply` checks where a patch writes,
 * not where `copy from` / `rename from` read, so these would copy a file of the person's into the
 * checkout. Each is refused before git runs, saying what it refused, with nothing written.
 */
describe('applyDiff refuses diffs not shaped like Berth’s', () => {
  let secretFile: string;
  beforeEach(() => {
    // Stands for ~/.ssh/id_ed25519: a file the person can read, outside the checkout.
    const home = mkdtempSync(join(tmpdir(), 'berth-apply-home-'));
    secretFile = join(home, 'id_ed25519');
    writeFileSync(secretFile, 'PRIVATE KEY OF THE PERSON\n');
  });

  /** The checkout's whole visible state: status with untracked files, contents, .git/config. */
  function fullState(dir: string): string {
    return (
      git(dir, 'status', '--porcelain', '--untracked-files=all', '--ignored') +
      readFileSync(join(dir, 'f.txt'), 'utf8') +
      readFileSync(join(dir, '.git', 'config'), 'utf8') +
      git(dir, 'diff') +
      git(dir, 'diff', '--cached')
    );
  }

  async function refused(diffText: string): Promise<{ error: BerthError; dir: string }> {
    const dir = clone();
    const before = fullState(dir);
    const error = await applyDiff({ cwd: dir, diff: diffText, baseCommit: base }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BerthError);
    expect((error as BerthError).message).toContain('nothing was changed');
    expect(fullState(dir)).toBe(before);
    expect(existsSync(join(dir, 'docs'))).toBe(false);
    return { error: error as BerthError, dir };
  }

  const copy = (from: string, to = 'docs/fixture.txt') =>
    `diff --git a/${to} b/${to}\nsimilarity index 100%\ncopy from ${from}\ncopy to ${to}\n`;
  const rename = (from: string, to = 'docs/fixture.txt') =>
    `diff --git a/${from} b/${to}\nsimilarity index 100%\nrename from ${from}\nrename to ${to}\n`;

  it('refuses a copy from an absolute path (a key of the person)', async () => {
    const { error } = await refused(copy(secretFile));
    expect(error.message).toContain('copy or rename header');
    expect(error.message).toContain(secretFile);
  });

  it('refuses a copy from ../../x and from .git/config', async () => {
    expect((await refused(copy('../../x'))).error.message).toContain('copy from ../../x');
    expect((await refused(copy('.git/config'))).error.message).toContain('copy from .git/config');
    // Hidden after a normal change, and in a section of its own.
    expect((await refused(diff + copy(secretFile))).error.message).toContain('copy or rename');
  });

  it('refuses renames, whatever their source', async () => {
    for (const from of [secretFile, '../../x', '.git/config', 'f.txt'])
      expect((await refused(rename(from))).error.message).toMatch(/two paths|copy or rename/);
    const plain = `diff --git a/f.txt b/f.txt\nsimilarity index 100%\nrename from f.txt\nrename to g.txt\n`;
    expect((await refused(plain)).error.message).toContain('copy or rename header');
  });

  it('refuses paths outside the tree or inside .git, in any header', async () => {
    const newFile = (path: string, side = path) =>
      `diff --git a/${path} b/${path}\nnew file mode 100644\nindex 0000000..e69de29\n--- /dev/null\n+++ b/${side}\n@@ -0,0 +1 @@\n+x\n`;
    expect((await refused(newFile('../../x'))).error.message).toContain('outside the tree');
    expect((await refused(newFile('.git/hooks/post-checkout'))).error.message).toContain(
      'inside .git',
    );
    expect((await refused(newFile('sub/.GIT/config'))).error.message).toContain('inside .git');
    expect((await refused(newFile('docs/a.txt', 'docs/../../b.txt'))).error.message).toContain(
      'outside the tree',
    );
  });

  it('refuses a +++ path that differs from its diff --git line', async () => {
    const mismatch = diff.replace('+++ b/new.txt', '+++ b/docs/other.txt');
    expect(mismatch).not.toBe(diff);
    const { error } = await refused(mismatch);
    expect(error.message).toContain('differs from its diff --git line');
  });

  it('refuses a NUL in a path', async () => {
    const nul = diff.replaceAll('new.txt', 'new\0.txt');
    expect((await refused(nul)).error.message).toContain('NUL');
    const quoted = diff
      .replaceAll('a/new.txt', '"a/new\\000.txt"')
      .replaceAll('b/new.txt', '"b/new\\000.txt"');
    expect((await refused(quoted)).error.message).toContain('NUL');
  });

  it('handles a 20 MB diff of one line: a 20 MB path is refused, a 20 MB line of content applies', async () => {
    const huge = 'x'.repeat(20 * 1024 * 1024);
    const { error } = await refused(`diff --git a/${huge} b/${huge}\n`);
    expect(error.message.length).toBeLessThan(1000);
    expect((await refused(huge)).error.message.length).toBeLessThan(1000);

    const dir = clone();
    const oneLine = `diff --git a/min.js b/min.js\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/min.js\n@@ -0,0 +1 @@\n+${huge}\n`;
    const outcome = await applyDiff({ cwd: dir, diff: oneLine, baseCommit: base });
    expect(outcome.mode).toBe('clean');
    expect(statSync(join(dir, 'min.js')).size).toBe(huge.length + 1);
  });

  it("still applies Berth's own diffs: new, changed, deleted, binary and mode changes", async () => {
    const work = clone();
    writeFileSync(join(work, 'f.txt'), 'a\nB\nc\nd\ne\nf\ng\nh\n');
    writeFileSync(join(work, 'bin.dat'), Buffer.from([0, 1, 2, 255]));
    writeFileSync(join(work, 'with space.txt'), 'x\n');
    writeFileSync(join(work, 'tab\there.txt'), 'x\n');
    git(work, 'add', '-A');
    const made = git(work, 'diff', '--cached', '--binary', '--no-renames', base);
    const dir = clone();
    await applyDiff({ cwd: dir, diff: made, baseCommit: base });
    expect(readFileSync(join(dir, 'bin.dat'))).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(readFileSync(join(dir, 'tab\there.txt'), 'utf8')).toBe('x\n');
  });
});

describe("git's own reading of a patch (the check behind the header check)", () => {
  it('refuses a patch in which git reads a copy, or paths the headers did not name', async () => {
    const dir = clone();
    const patchDir = mkdtempSync(join(tmpdir(), 'berth-apply-patch-'));
    const patch = join(patchDir, 'p.diff');
    const gitIn = (args: string[]) => runGit(args, { cwd: dir });
    writeFileSync(
      patch,
      'diff --git a/docs/x.txt b/docs/x.txt\nsimilarity index 100%\ncopy from /etc/hostname\ncopy to docs/x.txt\n',
    );
    const copied = await checkGitReading(gitIn, patch, new Set(['docs/x.txt'])).catch(
      (e: unknown) => e,
    );
    expect((copied as BerthError).message).toContain('git reads a copy or rename');
    writeFileSync(patch, diff);
    const other = await checkGitReading(gitIn, patch, new Set(['f.txt'])).catch((e: unknown) => e);
    expect((other as BerthError).message).toContain('other paths');
    await expect(
      checkGitReading(gitIn, patch, new Set(['f.txt', 'new.txt'])),
    ).resolves.toBeUndefined();
  });
});
