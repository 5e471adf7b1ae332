import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { applyDiff, filesInApplyErrors } from '../../src/git/apply-diff.js';
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
