/**
 * SecretMasker: removes secret values from text before it is logged or stored (setup and
 * maintenance output, error messages).
 *
 * Threat model. A setup script is trusted to use its secrets but not to keep them out of its
 * output: it may echo them, print them encoded (an auth header, a URL with a password, a JSON
 * body, `printf %q`), the output may arrive split across chunks at any byte, or across its two
 * streams (half on stdout, half on stderr), or with terminal escape sequences between the
 * characters of a value. The masker matches on a *view* of the text in which what does not
 * change the value's characters is undone, in one pass, left to right:
 * - ANSI escape sequences (CSI, OSC/DCS/APC/PM/SOS, two- and three-byte ESC sequences, the C1
 *   CSI) are skipped, so a value coloured character by character reads as one run;
 * - a line break after a line of base64 characters (16 or more, or the first line) is skipped,
 *   so `base64` output wrapped at 76 (or 64) columns reads as one run;
 * - `%XX` of an ASCII character (either case) is that character, so any URL encoding of an ASCII
 *   value (lower-case hex, `!'()*` encoded or not, every character encoded) reads as the value;
 * - `\uXXXX` is that UTF-16 unit (JSON, JavaScript), so `ensure_ascii` JSON and escaped letters
 *   read as the value.
 * Against that view it masks every value and its forms: base64 at any alignment, base64url, the
 * URL encoding of its non-ASCII characters (either case), `+` for a space, the JSON string
 * escaping, bash's `printf %q` quoting — each put through the same view; each line of a
 * multi-line value (8 characters or more, not a PEM armour line) is a value of its own. Forms other than the
 * value itself only for values of 4 characters or more; shorter values are masked only as
 * themselves. A masked run becomes `***` (keeping the line breaks it spanned); a run split
 * across stdout and stderr is masked in both. Text without these escapes costs one extra scan
 * for them (bench/secret-masker.bench.js).
 *
 * Limits (also in docs/lifecycle.md): a value transformed in other ways (hex, reversed, split by
 * the script with other text or a line break between the parts, `printf %q` of a value with
 * control characters (its `$'…'` form), other shell quoting, other encodings of non-ASCII
 * characters, double encoding, base64 wrapped with a prefix on each line) is not recognised;
 * a value whose parts are separated by more than `HELD_MAX` characters of escape sequences and
 * line breaks in a stream may pass; the view also masks text that only reads as a value after
 * decoding (harmless). The post-setup file scan is the second line of defence.
 */

export const MASK = '***';
const MIN_ENCODED_LENGTH = 4;
/** The longest escape sequence waited for at the end of a chunk (longer: taken as text). */
const ESCAPE_MAX = 256;
/** At most this much text is held back by a stream (beyond the longest form). */
const HELD_MAX = 4096;

/** The base64 characters of `value` that do not depend on its neighbours, for each alignment. */
function base64Cores(value: Buffer): string[] {
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), value]).toString('base64');
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + value.length)) / 6);
    const core = encoded.slice(first, end);
    if (core.length >= MIN_ENCODED_LENGTH) cores.push(core);
  }
  return cores;
}

function formsOf(value: string): string[] {
  if (value === '') return [];
  const forms = new Set<string>([value]);
  if (value.length >= MIN_ENCODED_LENGTH) {
    for (const core of base64Cores(Buffer.from(value, 'utf8'))) {
      forms.add(core);
      forms.add(core.replaceAll('+', '-').replaceAll('/', '_'));
    }
    const url = encodeURIComponent(value);
    forms.add(url);
    forms.add(url.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
    if (value.includes(' ')) forms.add(value.replaceAll(' ', '+'));
    forms.add(JSON.stringify(value).slice(1, -1));
    forms.add(shellQuoted(value));
  }
  // Each form as the view reads it (an empty one would match everywhere).
  const viewed = new Set<string>();
  for (const form of forms) {
    const text = viewOf(form, false).text;
    if (text !== '') viewed.add(text);
  }
  return [...viewed];
}

/** A line of a multi-line value shorter than this is not masked on its own (too common). */
const MIN_LINE_LENGTH = 8;

/** The lines of a multi-line value masked on their own: long enough, not a PEM armour line. */
function multiLineParts(value: string): string[] {
  return value
    .split('\n')
    .map((line) => line.replace(/\r$/, ''))
    .filter((line) => line.length >= MIN_LINE_LENGTH && !/^-----(?:BEGIN|END) /.test(line));
}

/** What bash's `printf %q` prints for a value of printable characters. */
function shellQuoted(value: string): string {
  return value.replace(/[ !"$&'()*,;<>?[\\\]^`{|}]/g, '\\$&').replace(/^[~#]/, '\\$&');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The view of a text (see the comment at the top) and where each of its characters came from in
 * the original, as segments: a run copied as it is (view and original lengths equal) or one
 * decoded character (view length 1, the original's length of its escape). Memory grows with the
 * number of escapes and line breaks, not with the text. `stable`: where the last token that may
 * continue in the next chunk starts (a stream holds it back); the whole text when not streaming.
 */
interface View {
  text: string;
  /** Per segment: its first view index, its original start and length; none: the text itself. */
  segments: { view: number[]; start: number[]; length: number[]; copied: boolean[] } | undefined;
  stable: number;
}

/** Where a token may start (a cheap test: text without one is its own view). */
const SPECIAL = /[\x1b\x9b%\\]|[A-Za-z0-9+/_-]\r?\n/;
/*
 * The tokens (viewOf walks them): an escape sequence's start, `\u` and four hex digits, `%` and
 * an ASCII byte's hex, a run of 16 or more base64 characters ending a line (its line break is
 * skipped when the run is the whole line).
 */
/** The first line of a text, if it is base64 (its start may be in an earlier chunk). */
const FIRST_BASE64_LINE = /^[A-Za-z0-9+/_-]+=*(?=\r?\n)/;
/** A token cut at the end of a chunk: held back by a stream. */
const CUT_TOKEN = /(?:%[0-7]?|\\(?:u[0-9a-fA-F]{0,3})?)$/;

/** The length of the escape sequence at `i` (ESC or C1 CSI), 0 if none, -1 if it may be cut. */
function escapeLength(text: string, i: number, streaming: boolean): number {
  const n = text.length;
  const first = text.charCodeAt(i);
  let j: number;
  let kind: 'csi' | 'string' | 'plain';
  if (first === 0x9b) {
    j = i + 1;
    kind = 'csi';
  } else {
    if (i + 1 >= n) return streaming ? -1 : 0;
    const second = text.charCodeAt(i + 1);
    j = i + 2;
    if (second === 0x5b) kind = 'csi';
    else if (
      second === 0x5d ||
      second === 0x50 ||
      second === 0x5f ||
      second === 0x5e ||
      second === 0x58
    )
      kind = 'string';
    else if (second >= 0x20 && second <= 0x2f) {
      j = i + 1;
      kind = 'plain';
    } else if (second >= 0x30 && second <= 0x7e) return 2;
    else return 0;
  }
  const limit = Math.min(n, i + ESCAPE_MAX);
  if (kind === 'csi') {
    while (j < limit && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x3f) j++;
    if (j < limit && text.charCodeAt(j) >= 0x40 && text.charCodeAt(j) <= 0x7e) return j + 1 - i;
  } else if (kind === 'string') {
    for (; j < limit; j++) {
      const c = text.charCodeAt(j);
      if (c === 0x07 || c === 0x9c) return j + 1 - i;
      if (c === 0x1b && j + 1 < n && text.charCodeAt(j + 1) === 0x5c) return j + 2 - i;
    }
  } else {
    while (j < limit && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
    if (j < limit && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x7e) return j + 1 - i;
  }
  // Unterminated: in a stream, maybe the rest is in the next chunk (unless already too long).
  return streaming && limit === n && n - i < ESCAPE_MAX ? -1 : 0;
}

/** Whether the character code is one of base64's or base64url's (not `=`). */
function isBase64Code(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2b ||
    c === 0x2f ||
    c === 0x5f ||
    c === 0x2d
  );
}

function isHexCode(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** The value of a hex digit's character code (checked by isHexCode). */
function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}

/** The value of `count` hex digits at `at`. */
function hexAt(text: string, at: number, count: number): number {
  let value = 0;
  for (let k = 0; k < count; k++) value = value * 16 + hexValue(text.charCodeAt(at + k));
  return value;
}

/** Where the line break is that ends a line of 16 or more base64 characters starting at `i`; -1. */
function base64LineEnd(text: string, i: number): number {
  let j = i;
  while (j < text.length && isBase64Code(text.charCodeAt(j))) j++;
  if (j - i < 16) return -1;
  while (text.charCodeAt(j) === 0x3d) j++;
  const c = text.charCodeAt(j);
  if (c === 0x0a) return j;
  if (c === 0x0d && text.charCodeAt(j + 1) === 0x0a) return j;
  return -1;
}

/**
 * The view, by one walk over the text (the TOKEN grammar, without a match object per token): the
 * view's text is built from slices of the copied runs and strings of the decoded characters, so a
 * text made of escapes costs the segment numbers and little else.
 */
function viewOf(text: string, streaming: boolean): View {
  if (!SPECIAL.test(text)) return { text, segments: undefined, stable: text.length };
  const n = text.length;
  const segments = {
    view: [] as number[],
    start: [] as number[],
    length: [] as number[],
    copied: [] as boolean[],
  };
  const parts: string[] = [];
  /** Decoded characters not yet in `parts`. */
  let codes: number[] = [];
  const flushCodes = () => {
    for (let k = 0; k < codes.length; k += 8192)
      parts.push(String.fromCharCode(...codes.slice(k, k + 8192)));
    codes = [];
  };
  let viewLength = 0;
  // In a stream, a token cut by the end of the chunk waits for the next one.
  let stable = n;
  if (streaming) {
    const cut = CUT_TOKEN.exec(text.slice(-6));
    if (cut) stable = n - cut[0].length;
  }
  // The text since `run` is copied as it is; a token that changes the view ends the run.
  let run = 0;
  /** The token [from, to) of the original reads as the character `code` (-1: as nothing). */
  const token = (from: number, to: number, code: number) => {
    if (from > run) {
      flushCodes();
      segments.view.push(viewLength);
      segments.start.push(run);
      segments.length.push(from - run);
      segments.copied.push(true);
      parts.push(text.slice(run, from));
      viewLength += from - run;
    }
    if (code >= 0) {
      segments.view.push(viewLength);
      segments.start.push(from);
      segments.length.push(to - from);
      segments.copied.push(false);
      codes.push(code);
      viewLength += 1;
    }
    run = to;
  };
  /** The line break at `at` after a line of base64: skipped. */
  const lineBreak = (at: number) => token(at, text.charCodeAt(at) === 0x0d ? at + 2 : at + 1, -1);
  const first = FIRST_BASE64_LINE.exec(text);
  let i = 0;
  if (first) {
    i = first[0].length;
    lineBreak(i);
    i = run;
  }
  while (i < stable) {
    const previous = i === 0 ? 0x0a : text.charCodeAt(i - 1);
    // A line start (as `^` in a multiline regular expression reads it).
    if (previous === 0x0a || previous === 0x0d || previous === 0x2028 || previous === 0x2029) {
      const end = base64LineEnd(text, i);
      if (end >= 0) {
        lineBreak(end);
        i = run;
        continue;
      }
    }
    const code = text.charCodeAt(i);
    if (code === 0x1b || code === 0x9b) {
      const length = escapeLength(text, i, streaming);
      if (length < 0) {
        stable = i;
        break;
      }
      if (length > 0) {
        token(i, i + length, -1);
        i = run;
        continue;
      }
    } else if (
      code === 0x5c &&
      text.charCodeAt(i + 1) === 0x75 &&
      isHexCode(text.charCodeAt(i + 2)) &&
      isHexCode(text.charCodeAt(i + 3)) &&
      isHexCode(text.charCodeAt(i + 4)) &&
      isHexCode(text.charCodeAt(i + 5))
    ) {
      token(i, i + 6, hexAt(text, i + 2, 4));
      i = run;
      continue;
    } else if (code === 0x25) {
      const high = text.charCodeAt(i + 1);
      if (high >= 0x30 && high <= 0x37 && isHexCode(text.charCodeAt(i + 2))) {
        token(i, i + 3, hexAt(text, i + 1, 2));
        i = run;
        continue;
      }
    }
    i++;
  }
  const end = Math.min(stable, n);
  token(end, end, -1);
  flushCodes();
  return { text: parts.join(''), segments, stable };
}

/** The segment holding view index `index` (binary search). */
function segmentOf(segments: NonNullable<View['segments']>, index: number): number {
  let low = 0;
  let high = segments.view.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if ((segments.view[mid] ?? 0) <= index) low = mid;
    else high = mid - 1;
  }
  return low;
}

/** Where a view character starts and ends in the original. */
function startOf(view: View, index: number): number {
  const segments = view.segments;
  if (!segments) return index;
  const s = segmentOf(segments, index);
  const start = segments.start[s] ?? 0;
  return segments.copied[s] ? start + index - (segments.view[s] ?? 0) : start;
}
function endOf(view: View, index: number): number {
  const segments = view.segments;
  if (!segments) return index + 1;
  const s = segmentOf(segments, index);
  const start = segments.start[s] ?? 0;
  return segments.copied[s]
    ? start + index - (segments.view[s] ?? 0) + 1
    : start + (segments.length[s] ?? 0);
}

/** What replaces a masked run of the original: the mask, and the line breaks the run spanned. */
function masked(run: string): string {
  const breaks = run.match(/\r?\n/g);
  return breaks ? MASK + breaks.join('') : MASK;
}

/** A piece of output of an interleaved stream: which stream, and its (masked) text. */
export interface MaskedPiece<S extends string> {
  stream: S;
  text: string;
}

/**
 * Masks the chunks of several streams of one process (stdout and stderr) as one text in the
 * order they arrived, so a value split between the streams is masked (in both).
 */
export interface InterleavedMaskingStream<S extends string> {
  push(stream: S, chunk: string): Array<MaskedPiece<S>>;
  /** Everything held back, masked; call at the end. */
  flush(): Array<MaskedPiece<S>>;
}

/** Masks a stream of text chunks; a value split across chunks is still masked. */
export interface MaskingStream {
  /** Masks a chunk; may hold back a short tail (a possible start of a value) until the next one. */
  push(chunk: string): string;
  /** Everything held back, masked; call at the end of the stream. */
  flush(): string;
}

export class SecretMasker {
  private readonly pattern: RegExp | undefined;
  /** Every form of every value, as the view reads it (each is masked). */
  private readonly forms: readonly string[];
  /** The longest form, minus one: the most view text held back between chunks. */
  private readonly holdBack: number;
  /** The first characters of the forms: only where one is may a held-back tail start. */
  private readonly firstChars: ReadonlySet<string>;

  constructor(values: Iterable<string>) {
    const forms = new Set<string>();
    for (const value of values) {
      for (const form of formsOf(value)) forms.add(form);
      // Each line of a multi-line value (a private key) on its own too: a file or a log may hold
      // the value with other line breaks, or only some of its lines.
      if (!value.includes('\n')) continue;
      for (const line of multiLineParts(value)) for (const form of formsOf(line)) forms.add(form);
    }
    const sorted = [...forms].sort((a, b) => b.length - a.length);
    this.forms = sorted;
    this.pattern =
      sorted.length > 0 ? new RegExp(sorted.map(escapeRegExp).join('|'), 'g') : undefined;
    this.holdBack = Math.max(0, (sorted[0]?.length ?? 0) - 1);
    this.firstChars = new Set(sorted.map((form) => form[0] ?? ''));
  }

  get isEmpty(): boolean {
    return this.pattern === undefined;
  }

  /** The length of the longest form, in characters of the view (0 without values). */
  get longestForm(): number {
    return this.forms[0]?.length ?? 0;
  }

  /**
   * Where the values and their forms are in `text`: [start, end) ranges of `text`, in order
   * (for a caller that masks in its own way, as diff-masking.ts does line by line).
   */
  ranges(text: string): Array<[number, number]> {
    if (!this.pattern) return [];
    const view = viewOf(text, false);
    return this.runs(view, 0, view.text.length);
  }

  mask(text: string): string {
    if (!this.pattern) return text;
    const view = viewOf(text, false);
    if (!view.segments) return text.replace(this.pattern, MASK);
    let out = '';
    let cut = 0;
    for (const [from, to] of this.runs(view, 0, view.text.length)) {
      out += text.slice(cut, from) + masked(text.slice(from, to));
      cut = to;
    }
    return out + text.slice(cut);
  }

  createStream(): MaskingStream {
    const inner = this.createInterleavedStream<'text'>();
    const join = (pieces: Array<MaskedPiece<'text'>>) => pieces.map((p) => p.text).join('');
    return {
      push: (chunk) => join(inner.push('text', chunk)),
      flush: () => join(inner.flush()),
    };
  }

  createInterleavedStream<S extends string>(): InterleavedMaskingStream<S> {
    // What is held back, as (stream, text) segments in arrival order, neighbours differing.
    let pending: Array<MaskedPiece<S>> = [];

    const emit = (upTo: number, runs: Array<[number, number]>): Array<MaskedPiece<S>> => {
      const out: Array<MaskedPiece<S>> = [];
      const rest: Array<MaskedPiece<S>> = [];
      let offset = 0;
      let r = 0;
      for (const segment of pending) {
        const start = offset;
        const end = offset + segment.text.length;
        offset = end;
        const emitEnd = Math.min(end, upTo);
        if (emitEnd > start) {
          let text = '';
          let cut = start;
          while (r < runs.length && (runs[r]?.[0] ?? 0) < emitEnd) {
            const [from, to] = runs[r] ?? [0, 0];
            const a = Math.max(from, start);
            const b = Math.min(to, emitEnd);
            if (b > a) {
              text +=
                segment.text.slice(cut - start, a - start) +
                masked(segment.text.slice(a - start, b - start));
              cut = b;
            }
            if (to <= emitEnd) r++;
            else break;
          }
          text += segment.text.slice(cut - start, emitEnd - start);
          if (text !== '') out.push({ stream: segment.stream, text });
        }
        if (end > upTo)
          rest.push({
            stream: segment.stream,
            text: segment.text.slice(Math.max(0, upTo - start)),
          });
      }
      pending = rest;
      return out;
    };

    return {
      push: (stream, chunk) => {
        if (chunk === '') return [];
        const last = pending[pending.length - 1];
        if (last && last.stream === stream) last.text += chunk;
        else pending.push({ stream, text: chunk });
        if (!this.pattern) return emit(Infinity, []);
        const text = pending.map((p) => p.text).join('');
        const view = viewOf(text, true);
        const length = view.text.length;
        // A run starting before `safe` is complete within the view (no form is longer).
        const safe = length - this.holdBack;
        const runs: Array<[number, number]> = [];
        let emitTo = 0;
        this.pattern.lastIndex = 0;
        for (let m = this.pattern.exec(view.text); m !== null; m = this.pattern.exec(view.text)) {
          if (m.index >= safe) break;
          runs.push([startOf(view, m.index), endOf(view, m.index + m[0].length - 1)]);
          emitTo = m.index + m[0].length;
        }
        emitTo = Math.max(emitTo, safe, 0);
        // Of the tail, only what may start a value is held back (a live log stays live).
        const tail = view.text.slice(emitTo);
        this.pattern.lastIndex = 0;
        const inTail = this.pattern.exec(tail);
        let hold = inTail === null ? tail.length : inTail.index;
        for (let i = 0; i < hold; i++) {
          if (!this.firstChars.has(tail[i] ?? '')) continue;
          const rest = tail.slice(i);
          if (this.forms.some((form) => form.startsWith(rest))) hold = i;
        }
        const held = emitTo + hold;
        let upTo = held < length ? startOf(view, held) : view.stable;
        // A stream never holds more than HELD_MAX beyond the longest form (see the limits).
        const cap = text.length - this.holdBack - HELD_MAX;
        if (upTo < cap)
          upTo = Math.max(cap, runs.length > 0 ? (runs[runs.length - 1]?.[1] ?? 0) : 0);
        return emit(upTo, runs);
      },
      flush: () => {
        if (!this.pattern) return emit(Infinity, []);
        const text = pending.map((p) => p.text).join('');
        const view = viewOf(text, false);
        return emit(Infinity, this.runs(view, 0, view.text.length));
      },
    };
  }

  /** The original ranges of every match in the view. */
  private runs(view: View, from: number, to: number): Array<[number, number]> {
    const runs: Array<[number, number]> = [];
    if (!this.pattern) return runs;
    const text = view.text.slice(0, to);
    this.pattern.lastIndex = from;
    for (let m = this.pattern.exec(text); m !== null; m = this.pattern.exec(text)) {
      runs.push([startOf(view, m.index), endOf(view, m.index + m[0].length - 1)]);
    }
    return runs;
  }
}
