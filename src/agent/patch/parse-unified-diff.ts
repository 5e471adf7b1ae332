import { BerthError } from '../../errors/berth-error.js';
import type { Hunk, HunkLine, PatchOperation } from './patch-operation.js';

/**
 * A unified diff (as `git diff` or `diff -u` prints it): per file `--- old` / `+++ new` headers
 * (an `a/`/`b/` prefix is dropped; `/dev/null` marks an added or deleted file; different old and
 * new paths are a rename), then `@@ -l,n +l,n @@` hunks whose line counts are checked. `diff
 * --git`, `index`, mode and similarity lines are skipped.
 */
export function parseUnifiedDiff(lines: string[]): PatchOperation[] {
  const operations: PatchOperation[] = [];
  let i = 0;
  const fail = (message: string): never => {
    throw new BerthError('invalid_input', `patch line ${i + 1}: ${message}`, { line: i + 1 });
  };
  while (i < lines.length) {
    const line = lines[i] ?? '';
    if (!line.startsWith('--- ') || !(lines[i + 1] ?? '').startsWith('+++ ')) {
      i += 1;
      continue;
    }
    const oldPath = diffPath(line.slice(4));
    i += 1;
    const newPath = diffPath((lines[i] ?? '').slice(4));
    i += 1;
    const hunks: Hunk[] = [];
    while (i < lines.length && (lines[i] ?? '').startsWith('@@')) {
      const match = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(lines[i] ?? '');
      if (!match) fail(`not a hunk header: ${JSON.stringify(lines[i])}`);
      let oldCount = match?.[2] === undefined ? 1 : Number(match[2]);
      let newCount = match?.[4] === undefined ? 1 : Number(match[4]);
      const hunk: Hunk = {
        number: hunks.length + 1,
        oldStart: Number(match?.[1] ?? 0),
        lines: [],
        endOfFile: false,
      };
      i += 1;
      while (oldCount > 0 || newCount > 0) {
        const body = lines[i];
        // The empty string after the input's last newline is not an empty context line.
        if (body === undefined || (body === '' && i === lines.length - 1))
          fail(`hunk ${hunk.number} of ${newPath ?? oldPath ?? ''} ends early`);
        const text = body ?? '';
        if (text.startsWith('\\')) {
          i += 1;
          continue;
        }
        const op = text === '' ? ' ' : text[0];
        if (op !== ' ' && op !== '-' && op !== '+') {
          fail(
            `hunk ${hunk.number}: a line starts with " ", "-" or "+" (the @@ counts may be wrong): ${JSON.stringify(text)}`,
          );
        }
        const hunkLine: HunkLine = { op: op as HunkLine['op'], text: text.slice(1) };
        if (hunkLine.op !== '+') oldCount -= 1;
        if (hunkLine.op !== '-') newCount -= 1;
        if (oldCount < 0 || newCount < 0)
          fail(`hunk ${hunk.number}: more lines than its @@ header counts`);
        hunk.lines.push(hunkLine);
        i += 1;
      }
      while ((lines[i] ?? '').startsWith('\\')) i += 1;
      hunks.push(hunk);
    }
    if (oldPath === undefined && newPath === undefined) fail('both sides of a diff are /dev/null');
    if (oldPath === undefined) {
      const added = hunks.flatMap((h) => h.lines.filter((l) => l.op === '+').map((l) => l.text));
      operations.push({
        kind: 'add',
        path: newPath ?? '',
        content: added.length > 0 ? `${added.join('\n')}\n` : '',
      });
    } else if (newPath === undefined) {
      operations.push({ kind: 'delete', path: oldPath });
    } else {
      if (hunks.length === 0 && oldPath === newPath) fail(`the diff of ${oldPath} has no hunks`);
      operations.push({
        kind: 'update',
        path: oldPath,
        hunks,
        ...(newPath !== oldPath ? { moveTo: newPath } : {}),
      });
    }
  }
  if (operations.length === 0) throw new BerthError('invalid_input', 'the diff changes no file');
  return operations;
}

/** The path of a `---`/`+++` header: undefined for /dev/null, without a/ b/ and a timestamp. */
function diffPath(raw: string): string | undefined {
  const path = raw.split('\t')[0]?.trim() ?? '';
  if (path === '/dev/null') return undefined;
  return path.replace(/^[ab]\//, '');
}
