import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import { diffPaths, readDiffHeaders, readDiffHeadersAsync } from '../../src/git/diff-headers.js';

/**
 * The diff header check on diffs real git makes (every shape Berth's results produce is read) and
 * on hand-made ones (each trick refused, naming what it refused).
 */

let work: string;
let realDiff: string;

function git(...args: string[]): string {
  return execFileSync('git', ['-C', work, '-c', 'user.name=T', '-c', 'user.email=t@e', ...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'berth-diff-headers-'));
  git('init', '-q', '-b', 'main');
  writeFileSync(join(work, 'f.txt'), 'a\nb\nc\n');
  writeFileSync(join(work, 'gone.txt'), 'bye\n');
  writeFileSync(join(work, 'script.sh'), 'echo hi\n');
  writeFileSync(join(work, 'sql.sql'), '-- a comment\nselect 1;\n++ not a header\n');
  writeFileSync(join(work, 'bin.dat'), Buffer.from([0, 1, 2, 3, 255]));
  git('add', '-A');
  git('commit', '-qm', 'base');
  const base = git('rev-parse', 'HEAD').trim();
  writeFileSync(join(work, 'f.txt'), 'a\nB\nc'); // no newline at the end
  unlinkSync(join(work, 'gone.txt'));
  chmodSync(join(work, 'script.sh'), 0o755);
  // Removing "-- a comment" and "++ not a header" gives hunk lines "--- a comment" and "-++ ...".
  writeFileSync(join(work, 'sql.sql'), 'select 1;\n+++ added\n');
  writeFileSync(join(work, 'bin.dat'), Buffer.from([0, 9, 9, 9, 254, 7]));
  writeFileSync(join(work, 'with space.txt'), 'x\n');
  writeFileSync(join(work, 'tab\there.txt'), 'x\n');
  writeFileSync(join(work, 'ünï.txt'), 'x\n');
  writeFileSync(join(work, 'empty'), '');
  mkdirSync(join(work, 'deep/er'), { recursive: true });
  writeFileSync(join(work, 'deep/er/.gitignore'), 'x\n');
  writeFileSync(join(work, 'deep/er/.github.txt'), 'x\n');
  symlinkSync('../f.txt', join(work, 'deep/link'));
  git('add', '-A');
  realDiff = git('diff', '--cached', '--binary', '--no-renames', '--no-ext-diff', base, '--');
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

function refusal(diff: string, options = {}): BerthError {
  try {
    readDiffHeaders(diff, options);
  } catch (error) {
    expect(error).toBeInstanceOf(BerthError);
    return error as BerthError;
  }
  throw new Error('the diff was not refused');
}

describe('readDiffHeaders', () => {
  it('reads every section of a diff git made, with the same paths git lists', () => {
    const paths = diffPaths(readDiffHeaders(realDiff));
    const listed = git('diff', '--cached', '--name-only', '-z', '--no-renames', 'HEAD')
      .split('\0')
      .filter((p) => p !== '');
    expect(paths.sort()).toEqual(listed.sort());
    expect(paths).toContain('tab\there.txt');
    expect(paths).toContain('ünï.txt');
    expect(paths).toContain('with space.txt');
    expect(realDiff).toContain('\n--- a comment\n'); // a hunk line that looks like a header
    expect(readDiffHeaders('').sections).toEqual([]);
  });

  it('gives each section its place in the text', () => {
    const { sections } = readDiffHeaders(realDiff);
    expect(sections[0]?.start).toBe(0);
    expect(sections.at(-1)?.end).toBe(realDiff.length);
    for (const s of sections) expect(realDiff.slice(s.start, s.end)).toMatch(/^diff --git /);
  });

  const copy = (from: string, to = 'docs/fixture.txt') =>
    `diff --git a/${to} b/${to}\nsimilarity index 100%\ncopy from ${from}\ncopy to ${to}\n`;

  it.each([
    ['an absolute copy source', copy('/home/me/.ssh/id_ed25519'), 'copy or rename header'],
    ['a ../ copy source', copy('../../x'), 'copy or rename header'],
    ['a .git/config copy source', copy('.git/config'), 'copy or rename header'],
    ['a plain copy', copy('src/a.ts'), 'copy or rename header'],
    [
      'a rename',
      'diff --git a/w b/w\nsimilarity index 100%\nrename from /etc/passwd\nrename to w\n',
      'copy or rename header',
    ],
    [
      'an old-style rename',
      'diff --git a/w b/w\nrename old ../x\nrename new w\n',
      'copy or rename',
    ],
    ['a dissimilarity header', 'diff --git a/w b/w\ndissimilarity index 90%\n', 'copy or rename'],
    [
      'a diff --git line naming two paths',
      'diff --git a/x b/y\nindex 1234567..89abcde 100644\n',
      'two paths',
    ],
    [
      'a copy header after the hunks',
      `diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\ncopy from /etc/passwd\ncopy to f\n`,
      'copy or rename header',
    ],
  ])('refuses %s', (_name, diff, expected) => {
    expect(refusal(diff).message).toContain(expected);
  });

  const newFile = (header: string, old = '/dev/null', side = header) =>
    `diff --git a/${header} b/${header}\nnew file mode 100644\nindex 0000000..e69de29\n--- ${old}\n+++ b/${side}\n@@ -0,0 +1 @@\n+x\n`;

  it.each([
    ['../../x', 'outside the tree'],
    ['a/../../x', 'outside the tree'],
    ['./x', 'outside the tree'],
    ['.git/config', 'inside .git'],
    ['.GIT/hooks/pre-commit', 'inside .git'],
    ['sub/.Git/config', 'inside .git'],
    ['sub/.git./config', 'inside .git'],
    ['GIT~1/config', 'inside .git'],
    ['.g\u200cit/config', 'inside .git'],
    ['a//b', 'empty segment'],
  ])('refuses the path %s', (path, expected) => {
    expect(refusal(newFile(path)).message).toContain(expected);
  });

  it('refuses absolute paths and NUL bytes, quoted or not', () => {
    expect(refusal('diff --git a//etc/x b//etc/x\n').message).toContain('absolute path');
    expect(refusal('diff --git "a/x\\000y" "b/x\\000y"\n').message).toContain('NUL');
    expect(refusal('diff --git a/x\0y b/x\0y\n').message).toContain('NUL');
    expect(refusal(newFile('x', '/dev/null', 'x\0y')).message).toContain('NUL');
    expect(refusal('diff --git "a/../x" "b/../x"\n').message).toContain('outside the tree');
    expect(refusal('diff --git x y\n').message).toContain('diff --git');
  });

  it('refuses a --- or +++ path that differs from its diff --git line', () => {
    expect(refusal(newFile('docs/a.txt', '/dev/null', 'docs/b.txt')).message).toContain(
      'differs from its diff --git line',
    );
    expect(refusal(newFile('docs/a.txt', 'a/.git/config')).message).toContain('inside .git');
    expect(refusal(newFile('docs/a.txt', 'a/docs/b.txt')).message).toContain('differs');
    expect(refusal(newFile('docs/a.txt', '/dev/null', '../x')).message).toContain(
      'outside the tree',
    );
  });

  it('refuses a traditional patch hidden between or before sections', () => {
    const hidden = `${newFile('a.txt')}--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-x\n+y\n`;
    expect(refusal(hidden).message).toContain('outside any file section');
    expect(refusal(`hello\n${newFile('a.txt')}`).message).toContain('outside any file section');
  });

  it('refuses a hunk longer than its header says, or a line foreign to a hunk', () => {
    const long = `diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n+c\n`;
    expect(refusal(long).message).toContain('outside any file section');
    const foreign = `diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\nXcopy\n`;
    expect(refusal(foreign).message).toContain('not part of its hunk');
  });

  it('accepts a cut diff only when told it was cut', () => {
    const cut = realDiff.slice(0, Math.floor(realDiff.length / 2));
    expect(() => readDiffHeaders(cut, { truncated: true })).not.toThrow();
    expect(refusal(cut).message).toMatch(/middle of a section|no newline|hunk/);
  });

  it('handles a 20 MB diff of one line without blowing up', () => {
    const huge = 'x'.repeat(20 * 1024 * 1024);
    // One 20 MB hunk line: accepted (a minified file is a normal change).
    const line = `diff --git a/min.js b/min.js\n--- a/min.js\n+++ b/min.js\n@@ -1 +1 @@\n-a\n+${huge}\n`;
    expect(diffPaths(readDiffHeaders(line))).toEqual(['min.js']);
    // One 20 MB header line: refused with a short message.
    const header = `diff --git a/${huge} b/${huge}\n`;
    const error = refusal(header);
    expect(error.message).toContain('longer than');
    expect(error.message.length).toBeLessThan(500);
    // One 20 MB line and nothing else.
    expect(refusal(huge).message.length).toBeLessThan(500);
  });

  it('reads a large diff in turns, letting the event loop run', async () => {
    const parts: string[] = [];
    for (let n = 0; n < 5000; n++) {
      parts.push(
        `diff --git a/src/f${n}.ts b/src/f${n}.ts\nindex 1234567..89abcde 100644\n--- a/src/f${n}.ts\n+++ b/src/f${n}.ts\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n`,
      );
    }
    const big = parts.join('');
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    const headers = await readDiffHeadersAsync(big);
    clearInterval(ticker);
    expect(headers.sections).toHaveLength(5000);
    expect(headers).toEqual(readDiffHeaders(big));
    // 45,000 lines: the loop ran between the turns (timers fired while it was read).
    expect(turns).toBeGreaterThan(0);
    await expect(readDiffHeadersAsync(`${big}copy from /etc/passwd\n`)).rejects.toThrow(
      'copy or rename header',
    );
  });
});
