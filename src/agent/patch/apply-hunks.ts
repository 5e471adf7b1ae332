import { BerthError } from '../../errors/berth-error.js';
import type { Hunk } from './patch-operation.js';

/**
 * Applies hunks to a file's text, in order, each found by its context and removed lines (not by
 * line numbers, which models get wrong): first exactly, then ignoring trailing white space, then
 * ignoring white space at both ends, then also reading typographic dashes, quotes and spaces as
 * their ASCII forms. A unified diff's line number is only a hint where to look first. A file
 * with CRLF line ends keeps them. Throws a BerthError naming the file and the hunk that did not match; the text itself is
 * never modified, the caller gets a new one.
 */
export function applyHunks(original: string, hunks: Hunk[], file: string): string {
  const crlf = original.includes('\r\n');
  const text = crlf ? original.replace(/\r\n/g, '\n') : original;
  const endsWithNewline = text === '' || text.endsWith('\n');
  const lines = text === '' ? [] : (endsWithNewline ? text.slice(0, -1) : text).split('\n');
  let cursor = 0;
  for (const hunk of hunks) {
    const old = hunk.lines.filter((l) => l.op !== '+').map((l) => l.text);
    const replacement = hunk.lines.filter((l) => l.op !== '-').map((l) => l.text);
    let from = cursor;
    let anchored = false;
    if (hunk.anchor !== undefined) {
      const anchor = hunk.anchor.trim();
      const anchorAt = find(lines, [hunk.anchor], from, false);
      if (anchorAt !== undefined) {
        // Models put the first context line in the @@ header as often as a function name.
        from = old[0]?.trim() === anchor ? anchorAt : anchorAt + 1;
        anchored = true;
      } else if (!old.some((l) => l.trim() === anchor)) {
        throw mismatch(
          file,
          hunk,
          `the line after @@ (${JSON.stringify(hunk.anchor)}) is not in the file`,
          old,
        );
      }
    }
    let at: number | undefined;
    if (old.length === 0) {
      // A pure insertion: after the anchor, at the diff's position, or at the end.
      at = anchored
        ? from
        : hunk.oldStart !== undefined
          ? Math.min(lines.length, hunk.oldStart)
          : lines.length;
    } else {
      if (hunk.oldStart !== undefined && hunk.oldStart - 1 >= from) {
        at = find(lines, old, hunk.oldStart - 1, hunk.endOfFile, true);
      }
      at ??= find(lines, old, from, hunk.endOfFile);
      // A later hunk given before an earlier one: look from the top as a last resort.
      if (at === undefined && from > 0 && !anchored) at = find(lines, old, 0, hunk.endOfFile);
    }
    if (at === undefined)
      throw mismatch(file, hunk, 'its context and removed lines are not in the file', old);
    lines.splice(at, old.length, ...replacement);
    cursor = at + replacement.length;
  }
  if (lines.length === 0) return '';
  const joined = `${lines.join('\n')}${endsWithNewline ? '\n' : ''}`;
  return crlf ? joined.replace(/\n/g, '\r\n') : joined;
}

const TYPOGRAPHIC: [RegExp, string][] = [
  [/[\u2010-\u2015\u2212]/g, '-'],
  [/[\u2018\u2019\u201A\u201B]/g, "'"],
  [/[\u201C\u201D\u201E\u201F]/g, '"'],
  [/[\u00A0\u2002-\u200A\u202F\u205F\u3000]/g, ' '],
];

function ascii(line: string): string {
  return TYPOGRAPHIC.reduce(
    (text, [pattern, replacement]) => text.replace(pattern, replacement),
    line.trim(),
  );
}

const NORMALISERS: ((line: string) => string)[] = [
  (l) => l,
  (l) => l.trimEnd(),
  (l) => l.trim(),
  ascii,
];

/** The index where `needle` occurs in `lines` at or after `from` (only there when `exact`). */
function find(
  lines: string[],
  needle: string[],
  from: number,
  atEnd: boolean,
  exactPosition = false,
): number | undefined {
  for (const normalise of NORMALISERS) {
    const wanted = needle.map(normalise);
    const matches = (start: number): boolean =>
      wanted.every(
        (w, k) => normalise(lines[start + k] ?? '\u0000') === w && start + k < lines.length,
      );
    if (atEnd) {
      const start = lines.length - needle.length;
      if (start >= from && matches(start)) return start;
      continue;
    }
    if (exactPosition) {
      if (matches(from)) return from;
      continue;
    }
    for (let start = from; start + needle.length <= lines.length; start += 1)
      if (matches(start)) return start;
  }
  return undefined;
}

function mismatch(file: string, hunk: Hunk, why: string, old: string[]): BerthError {
  const shown = old
    .slice(0, 12)
    .map((l) => `  ${l}`)
    .join('\n');
  const more = old.length > 12 ? `\n  … (${old.length - 12} more lines)` : '';
  return new BerthError(
    'invalid_input',
    `${file}: hunk ${hunk.number}${hunk.anchor !== undefined ? ` (@@ ${hunk.anchor})` : ''} does not apply: ${why}. The lines it expects:\n${shown}${more}`,
    { file, hunk: hunk.number },
  );
}
