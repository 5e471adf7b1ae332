import { BerthError } from '../../errors/berth-error.js';
import type { Hunk, HunkLine, PatchOperation } from './patch-operation.js';

/**
 * The `*** Begin Patch` format (as OpenAI's codex CLI documents it):
 *
 *   Patch      := "*** Begin Patch" { FileOp } "*** End Patch"
 *   FileOp     := AddFile | DeleteFile | UpdateFile
 *   AddFile    := "*** Add File: " path { "+" line }
 *   DeleteFile := "*** Delete File: " path
 *   UpdateFile := "*** Update File: " path [ "*** Move to: " path ] { Hunk }
 *   Hunk       := "@@" [ " " anchor ] { (" " | "-" | "+") line } [ "*** End of File" ]
 *
 * Leniencies: the first hunk of a file may omit its "@@" line; an empty line inside a hunk is an
 * empty context line; a missing "*** End Patch" at the very end is accepted.
 */
export function parseBeginPatch(lines: string[], begin: number): PatchOperation[] {
  const operations: PatchOperation[] = [];
  let i = begin + 1;
  const fail = (message: string): never => {
    throw new BerthError('invalid_input', `patch line ${i + 1}: ${message}`, { line: i + 1 });
  };
  const header = (line: string, prefix: string): string | undefined => {
    if (!line.startsWith(prefix)) return undefined;
    const path = line.slice(prefix.length).trim();
    if (path === '') fail(`"${prefix.trim()}" needs a path`);
    return path;
  };
  const isHeader = (line: string): boolean => line.startsWith('*** ') && line !== '*** End of File';

  let ended = false;
  while (i < lines.length) {
    const line = lines[i] ?? '';
    if (line.trim() === '*** End Patch') {
      ended = true;
      break;
    }
    const add = header(line, '*** Add File:');
    const del = header(line, '*** Delete File:');
    const update = header(line, '*** Update File:');
    if (add !== undefined) {
      i += 1;
      const content: string[] = [];
      while (i < lines.length && !isHeader(lines[i] ?? '')) {
        const body = lines[i] ?? '';
        if (body.startsWith('+')) content.push(body.slice(1));
        else if (body === '' && i === lines.length - 1) break;
        else fail(`every line of an added file starts with "+": ${JSON.stringify(body)}`);
        i += 1;
      }
      operations.push({
        kind: 'add',
        path: add,
        content: content.length > 0 ? `${content.join('\n')}\n` : '',
      });
    } else if (del !== undefined) {
      operations.push({ kind: 'delete', path: del });
      i += 1;
    } else if (update !== undefined) {
      i += 1;
      let moveTo: string | undefined;
      const move = header(lines[i] ?? '', '*** Move to:');
      if (move !== undefined) {
        moveTo = move;
        i += 1;
      }
      const hunks: Hunk[] = [];
      let current: Hunk | undefined;
      while (i < lines.length && !isHeader(lines[i] ?? '')) {
        const body = lines[i] ?? '';
        if (body.startsWith('@@')) {
          const anchor = body.slice(2).trim();
          current = {
            number: hunks.length + 1,
            lines: [],
            endOfFile: false,
            ...(anchor !== '' ? { anchor } : {}),
          };
          hunks.push(current);
        } else if (body === '*** End of File') {
          if (!current) fail('"*** End of File" outside a hunk');
          else current.endOfFile = true;
        } else {
          const op = body[0];
          let hunkLine: HunkLine | undefined;
          if (op === ' ' || op === '-' || op === '+') hunkLine = { op, text: body.slice(1) };
          else if (body === '') hunkLine = { op: ' ', text: '' };
          else fail(`a hunk line starts with " ", "-" or "+": ${JSON.stringify(body)}`);
          if (hunkLine) {
            if (!current) {
              current = { number: 1, lines: [], endOfFile: false };
              hunks.push(current);
            }
            current.lines.push(hunkLine);
          }
        }
        i += 1;
      }
      // Trailing empty context lines are usually the end of the input, not part of the hunk.
      for (const hunk of hunks) {
        while (
          hunk.lines.length > 0 &&
          hunk.lines.at(-1)?.op === ' ' &&
          hunk.lines.at(-1)?.text === ''
        )
          hunk.lines.pop();
      }
      if (hunks.every((h) => h.lines.length === 0) && moveTo === undefined) {
        fail(`"*** Update File: ${update}" has no changes`);
      }
      operations.push({
        kind: 'update',
        path: update,
        hunks,
        ...(moveTo !== undefined ? { moveTo } : {}),
      });
    } else if (line.trim() === '') {
      i += 1;
    } else {
      fail(
        `expected "*** Add File:", "*** Delete File:", "*** Update File:" or "*** End Patch", got ${JSON.stringify(line)}`,
      );
    }
  }
  if (!ended && lines.slice(begin).some((l) => l.startsWith('*** End Patch')))
    fail('malformed "*** End Patch"');
  if (operations.length === 0) throw new BerthError('invalid_input', 'the patch changes no file');
  return operations;
}
