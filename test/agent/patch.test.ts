import { describe, expect, it } from 'vitest';
import { applyHunks } from '../../src/agent/patch/apply-hunks.js';
import { parsePatch } from '../../src/agent/patch/parse-patch.js';
import type { PatchOperation } from '../../src/agent/patch/patch-operation.js';

function update(op: PatchOperation | undefined): Extract<PatchOperation, { kind: 'update' }> {
  if (op?.kind !== 'update') throw new Error(`expected an update, got ${op?.kind}`);
  return op;
}

const FILE = [
  'def greet():',
  '    print("Hi")',
  '',
  'def add(a, b):',
  '    return a - b',
  '',
  'def main():',
  '    greet()',
  '',
].join('\n');

describe('parsePatch: the Begin Patch format', () => {
  it('parses add, delete, update with move, anchors and End of File', () => {
    const ops = parsePatch(
      [
        '*** Begin Patch',
        '*** Add File: docs/hello.txt',
        '+Hello',
        '+',
        '+world',
        '*** Delete File: obsolete.txt',
        '*** Update File: src/app.py',
        '*** Move to: src/main.py',
        '@@ def add(a, b):',
        '-    return a - b',
        '+    return a + b',
        '@@',
        ' def main():',
        '-    greet()',
        '+    greet()',
        '+    print(add(2, 3))',
        '*** End of File',
        '*** End Patch',
      ].join('\n'),
    );
    expect(ops[0]).toEqual({ kind: 'add', path: 'docs/hello.txt', content: 'Hello\n\nworld\n' });
    expect(ops[1]).toEqual({ kind: 'delete', path: 'obsolete.txt' });
    const up = update(ops[2]);
    expect(up.path).toBe('src/app.py');
    expect(up.moveTo).toBe('src/main.py');
    expect(up.hunks).toHaveLength(2);
    expect(up.hunks[0]).toMatchObject({ anchor: 'def add(a, b):', endOfFile: false });
    expect(up.hunks[1]?.endOfFile).toBe(true);
    expect(up.hunks[1]?.lines).toEqual([
      { op: ' ', text: 'def main():' },
      { op: '-', text: '    greet()' },
      { op: '+', text: '    greet()' },
      { op: '+', text: '    print(add(2, 3))' },
    ]);
  });

  it('tolerates text around the patch and a first hunk without @@', () => {
    const ops = parsePatch(
      [
        "apply_patch <<'EOF'",
        '*** Begin Patch',
        '*** Update File: a.txt',
        '-old',
        '+new',
        '*** End Patch',
        'EOF',
      ].join('\n'),
    );
    expect(update(ops[0]).hunks[0]?.lines).toEqual([
      { op: '-', text: 'old' },
      { op: '+', text: 'new' },
    ]);
  });

  it('refuses malformed patches with the line at fault', () => {
    expect(() => parsePatch('just some text')).toThrow(/not a patch/);
    expect(() => parsePatch('*** Begin Patch\n*** Add File: a\nno plus\n*** End Patch')).toThrow(
      /patch line 3: every line of an added file starts with "\+"/,
    );
    expect(() => parsePatch('*** Begin Patch\n*** Frobnicate File: a\n*** End Patch')).toThrow(
      /patch line 2: expected "\*\*\* Add File:"/,
    );
    expect(() => parsePatch('*** Begin Patch\n*** Update File: a\n*** End Patch')).toThrow(
      /has no changes/,
    );
    expect(() => parsePatch('*** Begin Patch\n*** End Patch')).toThrow(/changes no file/);
    expect(() =>
      parsePatch('*** Begin Patch\n*** Update File: a\n@@\n?what\n*** End Patch'),
    ).toThrow(/patch line 4: a hunk line starts with/);
    expect(() => parsePatch('*** Begin Patch\n*** Add File: \n*** End Patch')).toThrow(
      /needs a path/,
    );
  });
});

describe('parsePatch: unified diffs', () => {
  it('parses git diffs: update, add, delete, rename, no-newline markers', () => {
    const ops = parsePatch(
      [
        'diff --git a/src/add.sh b/src/add.sh',
        'index 83db48f..bf269f4 100644',
        '--- a/src/add.sh',
        '+++ b/src/add.sh',
        '@@ -1,2 +1,2 @@',
        ' # add two numbers',
        '-add() { echo $(( $1 - $2 )); }',
        '+add() { echo $(( $1 + $2 )); }',
        '\\ No newline at end of file',
        'diff --git a/new.txt b/new.txt',
        'new file mode 100644',
        '--- /dev/null',
        '+++ b/new.txt',
        '@@ -0,0 +1,2 @@',
        '+one',
        '+two',
        '--- a/gone.txt',
        '+++ /dev/null',
        '@@ -1 +0,0 @@',
        '-bye',
        '--- a/old/name.txt',
        '+++ b/new/name.txt',
        '@@ -1 +1 @@',
        '-x',
        '+y',
      ].join('\n'),
    );
    expect(ops.map((o) => o.kind)).toEqual(['update', 'add', 'delete', 'update']);
    expect(update(ops[0]).hunks[0]).toMatchObject({
      oldStart: 1,
      lines: [{ op: ' ' }, { op: '-' }, { op: '+' }],
    });
    expect(ops[1]).toEqual({ kind: 'add', path: 'new.txt', content: 'one\ntwo\n' });
    expect(ops[2]).toEqual({ kind: 'delete', path: 'gone.txt' });
    expect(update(ops[3])).toMatchObject({ path: 'old/name.txt', moveTo: 'new/name.txt' });
  });

  it('refuses a hunk whose counts do not fit its lines', () => {
    expect(() => parsePatch('--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n')).toThrow(
      /hunk 1.*ends early|counts may be wrong/,
    );
    expect(() => parsePatch('--- a/x\n+++ b/x\n@@ nonsense @@\n')).toThrow(/not a hunk header/);
  });
});

describe('applyHunks', () => {
  it('finds hunks by context, with an anchor, in order', () => {
    const op = update(
      parsePatch(
        [
          '*** Begin Patch',
          '*** Update File: app.py',
          '@@ def add(a, b):',
          '-    return a - b',
          '+    return a + b',
          '@@ def main():',
          '     greet()',
          '+    print(add(2, 3))',
          '*** End Patch',
        ].join('\n'),
      )[0],
    );
    expect(applyHunks(FILE, op.hunks, 'app.py')).toBe(
      FILE.replace('a - b', 'a + b').replace(
        '    greet()\n',
        '    greet()\n    print(add(2, 3))\n',
      ),
    );
  });

  it('tolerates trailing and leading white space differences in context', () => {
    const op = update(
      parsePatch(
        '*** Begin Patch\n*** Update File: a\n@@\n def greet():  \n-print("Hi")\n+    print("Hello")\n*** End Patch',
      )[0],
    );
    expect(applyHunks(FILE, op.hunks, 'a')).toContain('    print("Hello")\n\ndef add');
  });

  it('uses a unified diff line number as a hint but finds moved code anyway', () => {
    const op = update(
      parsePatch(
        '--- a/x\n+++ b/x\n@@ -40,2 +40,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n',
      )[0],
    );
    expect(applyHunks(FILE, op.hunks, 'x')).toContain('return a + b');
  });

  it('appends a pure insertion at the end, or after its anchor', () => {
    const end = update(
      parsePatch('*** Begin Patch\n*** Update File: a\n@@\n+# the end\n*** End Patch')[0],
    );
    expect(applyHunks('one\n', end.hunks, 'a')).toBe('one\n# the end\n');
    const anchored = update(
      parsePatch('*** Begin Patch\n*** Update File: a\n@@ one\n+one and a half\n*** End Patch')[0],
    );
    expect(applyHunks('one\ntwo\n', anchored.hunks, 'a')).toBe('one\none and a half\ntwo\n');
  });

  it('keeps CRLF line ends, and matches typographic quotes and dashes as ASCII', () => {
    const op = update(
      parsePatch('*** Begin Patch\n*** Update File: a\n@@\n a\n-b\n+c\n*** End Patch')[0],
    );
    expect(applyHunks('a\r\nb\r\nz\r\n', op.hunks, 'a')).toBe('a\r\nc\r\nz\r\n');
    const typo = update(
      parsePatch(
        '*** Begin Patch\n*** Update File: a\n-say("it\'s - ok")\n+say("fine")\n*** End Patch',
      )[0],
    );
    expect(applyHunks('say(\u201Cit\u2019s \u2013 ok\u201D)\n', typo.hunks, 'a')).toBe(
      'say("fine")\n',
    );
  });

  it('keeps a missing final newline as it was', () => {
    const op = update(parsePatch('*** Begin Patch\n*** Update File: a\n-b\n+c\n*** End Patch')[0]);
    expect(applyHunks('a\nb', op.hunks, 'a')).toBe('a\nc');
  });

  it('honours End of File', () => {
    const op = update(
      parsePatch(
        '*** Begin Patch\n*** Update File: a\n@@\n-x\n+y\n*** End of File\n*** End Patch',
      )[0],
    );
    expect(applyHunks('x\nmid\nx\n', op.hunks, 'a')).toBe('x\nmid\ny\n');
  });

  it('refuses missing context naming the file and the hunk', () => {
    const op = update(
      parsePatch(
        '*** Begin Patch\n*** Update File: app.py\n@@\n-    return a - b\n+    return a + b\n@@\n def nope():\n-    pass\n+    return 1\n*** End Patch',
      )[0],
    );
    expect(() => applyHunks(FILE, op.hunks, 'app.py')).toThrow(
      /^app\.py: hunk 2 does not apply: its context and removed lines are not in the file\. The lines it expects:\n {2}def nope\(\):\n {6}pass$/,
    );
    const anchored = update(
      parsePatch(
        '*** Begin Patch\n*** Update File: app.py\n@@ class Missing:\n-x\n+y\n*** End Patch',
      )[0],
    );
    expect(() => applyHunks(FILE, anchored.hunks, 'app.py')).toThrow(
      /hunk 1 \(@@ class Missing:\) does not apply: the line after @@/,
    );
  });
});
