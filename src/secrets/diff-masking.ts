import { MASK, type SecretMasker } from './secret-masker.js';

/**
 * Masks secret values in a diff by its content, not its lines as printed.
 *
 * Threat model: the diff comes out of a sandbox (setup may have written a credential into the
 * workspace, the agent may have written one anywhere) and is served, stored and pushed; at up to
 * 20 MB it is masked in the orchestrator, whose event loop also carries the egress proxies and
 * `/health`. Two things must hold:
 *   - a value is found whatever the diff's line prefixes do to it: every line of a hunk starts
 *     with `+`, `-` or a space, which splits a multi-line value (a private key) and breaks the
 *     masker's join of base64 wrapped at 76 columns. Each side of the change is matched as the
 *     file reads (new side: context and `+` lines without their prefix; old side: context and
 *     `-` lines), with header and binary lines read as they are on both sides;
 *   - the work is bounded: the content is masked in pieces of PIECE characters (a piece keeps
 *     the last OVERLAP characters of the one before, so a value cut by a piece's end is found in
 *     the next), the event loop gets a turn after each piece, and what is kept meanwhile is the
 *     pieces and the ranges found, never a per-character or per-escape record of the whole diff.
 * A masked run becomes `***` on each line it touches (line prefixes and line breaks stay), so
 * the hunks keep their shape. Limits: a value whose form spans more than OVERLAP characters of the
 * content (escapes and line breaks included) across a piece boundary is not found; a value split
 * between a `+` line and a `-` line is not found (it is in neither file); a value inside a binary
 * patch (compressed, base85) is not recognised.
 */

/** Content characters masked in one turn of the event loop (at least 4 × OVERLAP). */
const PIECE = 64 * 1024;
/** Beyond the longest form's escaped length: room for escape sequences and line breaks inside it. */
const SLACK = 4096;
/** The longest escape the view decodes to one character (`\uXXXX`). */
const ESCAPE_WIDTH = 6;

/** A run of a piece's content copied from the diff: piece offset, diff offset, length. */
interface Span {
  at: number;
  diff: number;
  length: number;
}

function spanEnd(span: Span | undefined): number {
  return span ? span.at + span.length : Infinity;
}

/** One side of a section (old or new file), masked piece by piece. */
class SideMasker {
  private parts: string[] = [];
  private size = 0;
  private spans: Span[] = [];

  constructor(
    private readonly masker: SecretMasker,
    private readonly overlap: number,
    private readonly piece: number,
    /**
     * Diff ranges found, flat (start, end, start, end...), ascending and apart: a range found
     * again in a piece's overlap is not added twice, touching ranges are one.
     */
    readonly hits: number[] = [],
  ) {}

  private record(from: number, to: number): void {
    const last = this.hits.length - 1;
    const lastEnd = last > 0 ? (this.hits[last] ?? 0) : -1;
    if (to <= lastEnd) return;
    if (from <= lastEnd) this.hits[last] = to;
    else this.hits.push(from, to);
  }

  /** Adds diff[from, to) as content, and a line break after it when `newline`. */
  async add(diff: string, from: number, to: number, newline: boolean): Promise<void> {
    let at = from;
    while (at < to) {
      const take = Math.min(to - at, this.piece - this.size + 1);
      this.spans.push({ at: this.size, diff: at, length: take });
      this.parts.push(diff.slice(at, at + take));
      this.size += take;
      at += take;
      if (this.size >= this.piece) await this.flush(false);
    }
    if (newline) {
      this.parts.push('\n');
      this.size += 1;
      if (this.size >= this.piece) await this.flush(false);
    }
  }

  /** Masks what is held; keeps the last `overlap` characters unless this is the end. */
  async flush(last: boolean): Promise<void> {
    if (this.size === 0) return;
    const text = this.parts.join('');
    // Ranges and spans both ascend: one walk over the spans.
    let first = 0;
    for (const [from, to] of this.masker.ranges(text)) {
      while (first < this.spans.length && spanEnd(this.spans[first]) <= from) first++;
      for (let i = first; i < this.spans.length; i++) {
        const span = this.spans[i] as Span;
        if (span.at >= to) break;
        const a = Math.max(from, span.at);
        const b = Math.min(to, span.at + span.length);
        if (b > a) this.record(span.diff + a - span.at, span.diff + b - span.at);
      }
    }
    if (last) {
      this.parts = [];
      this.spans = [];
      this.size = 0;
      return;
    }
    const keep = Math.max(0, text.length - this.overlap);
    this.parts = [text.slice(keep)];
    this.size = text.length - keep;
    this.spans = this.spans
      .filter((s) => s.at + s.length > keep)
      .map((s) => {
        const cut = Math.max(0, keep - s.at);
        return { at: s.at + cut - keep, diff: s.diff + cut, length: s.length - cut };
      });
    // The event loop's turn (the egress proxies and /health share it).
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The [start, end) ranges of one section's text `diff[start, end)` that hold a value or a form. */
async function sectionHits(
  diff: string,
  start: number,
  end: number,
  masker: SecretMasker,
): Promise<[number[], number[]]> {
  const overlap = ESCAPE_WIDTH * masker.longestForm + SLACK;
  const piece = Math.max(PIECE, 4 * overlap);
  const oldSide = new SideMasker(masker, overlap, piece);
  const newSide = new SideMasker(masker, overlap, piece);
  let inHunks = false;
  let lines = 0;
  for (let at = start; at < end;) {
    const newline = diff.indexOf('\n', at);
    const stop = newline === -1 || newline >= end ? end : newline;
    const hasBreak = stop < end;
    const kind = diff.charCodeAt(at);
    if (diff.startsWith('@@ ', at)) inHunks = true;
    if (inHunks && kind === PLUS) await newSide.add(diff, at + 1, stop, hasBreak);
    else if (inHunks && kind === MINUS) await oldSide.add(diff, at + 1, stop, hasBreak);
    else if (inHunks && kind === BACKSLASH) {
      // "\ No newline at end of file": not content.
    } else {
      // Context (its space dropped), a header, a hunk header, a binary patch line: both sides.
      const from = inHunks && kind === SPACE ? at + 1 : at;
      await oldSide.add(diff, from, stop, hasBreak);
      await newSide.add(diff, from, stop, hasBreak);
    }
    at = stop + 1;
    // Many short lines: a turn now and then even when no piece fills up.
    if (++lines % 16_384 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await oldSide.flush(true);
  await newSide.flush(true);
  return [oldSide.hits, newSide.hits];
}

const SPACE = 0x20;
const PLUS = 0x2b;
const MINUS = 0x2d;
const BACKSLASH = 0x5c;

/**
 * The text of diff[start, end) with the ranges of both sides masked (each list ascending): `***`
 * once per run of a line. Walks the two lists together, without an object per range.
 */
function applyHits(diff: string, start: number, end: number, sides: [number[], number[]]): string {
  const [a, b] = sides;
  const out: string[] = [];
  let cut = start;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let from: number;
    let to: number;
    if (j >= b.length || (i < a.length && (a[i] ?? 0) <= (b[j] ?? 0))) {
      from = a[i] ?? 0;
      to = a[i + 1] ?? 0;
      i += 2;
    } else {
      from = b[j] ?? 0;
      to = b[j + 1] ?? 0;
      j += 2;
    }
    // Ranges never hold a line break of the diff (spans stop at it); overlapping or touching
    // ranges (a line on both sides) make one mask.
    if (from <= cut && out.length > 0) {
      cut = Math.max(cut, to);
      continue;
    }
    out.push(diff.slice(cut, from), MASK);
    cut = to;
  }
  out.push(diff.slice(cut, end));
  return out.join('');
}

/** The masked text of diff[start, end) and whether it held a value; the event loop keeps turning. */
export async function maskDiffText(
  diff: string,
  start: number,
  end: number,
  masker: SecretMasker,
): Promise<{ text: string; found: boolean }> {
  if (masker.isEmpty) return { text: diff.slice(start, end), found: false };
  const sides = await sectionHits(diff, start, end, masker);
  if (sides[0].length === 0 && sides[1].length === 0)
    return { text: diff.slice(start, end), found: false };
  return { text: applyHits(diff, start, end, sides), found: true };
}
