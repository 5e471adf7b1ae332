import { BerthError } from '../errors/berth-error.js';
import { foldName, plantedRepository } from './embedded-repository.js';

/**
 * Reads the headers of an attempt's diff and refuses every diff that is not shaped like the ones
 * Berth makes, before any git runs on it.
 *
 * Threat model: the diff comes out of a sandbox whose agent ran as root and could replace `git`
 * there, so it is hand-made as far as the host is concerned. `git apply` on the host checks where
 * a patch writes but not where a `copy from` or `rename from` header reads: such a header copies
 * any file the person (or the orchestrator, for `task pr`) can read into the tree. Berth's own
 * diffs come from `git diff --binary --no-renames` and have a fixed shape: sections that start
 * with `diff --git a/P b/P` (the same P twice), mode and `index` lines, `--- a/P`/`+++ b/P` (or
 * `/dev/null`), hunks whose line counts match their `@@` header, and binary patches. Anything
 * else is refused: copy and rename headers (`copy from|to`, `rename from|to|old|new`,
 * `similarity index`, `dissimilarity index`), a `diff --git` line naming two paths, a `---`/`+++`
 * path that is not the section's, a line git would read as a header outside a hunk, and any
 * path that is empty, absolute, has an empty, `.` or `..` segment, names `.git` at any depth in
 * any case (with the spellings NTFS and HFS+ fold to `.git`: trailing dots and spaces, an NTFS
 * stream suffix `::$INDEX_ALLOCATION`, `git~1`, ignorable characters, a backslash as separator),
 * holds a NUL, or is longer than PATH_MAX. Paths are compared as bytes (a quoted name's octal
 * bytes that are not UTF-8 would all read as U+FFFD when decoded; an unquoted name that is not
 * UTF-8 is refused). Together, the paths may not put a path below a symlink the same diff
 * creates (compared as a case-insensitive file system would: `Docs` a link, `docs/x` through
 * it), nor make a directory look like a git repository (embedded-repository.ts). Hunks are
 * walked with git's own counting rules, so a hunk line such as `--- x` (a removed `-- x`) is
 * content, exactly as git reads it. What this module does not do: judge the content of files (a
 * symlink the diff adds is a symlink in the tree; `git apply` refuses to write through one), or
 * look at the tree the diff goes into (apply-diff.ts does: ignored paths, a git repository
 * completed with what is there).
 */

export interface DiffSection {
  /**
   * The path the section changes (the same on both sides: Berth's diffs have no renames), as
   * UTF-8 for showing (bytes that are not UTF-8 read as U+FFFD).
   */
  path: string;
  /** The same path as git has it: its bytes, one character each (latin1), for comparing. */
  bytes: string;
  /** The section makes the path a symlink (`new file mode 120000`, `new mode 120000`). */
  symlink: boolean;
  /** Where the section starts and ends in the diff text (character offsets). */
  start: number;
  end: number;
}

export interface DiffHeaders {
  /** Every file section, in order. */
  sections: DiffSection[];
}

export interface ReadDiffOptions {
  /**
   * The diff was cut at a size limit (results.ts): its last section may end in the middle of a
   * hunk or a binary patch; that is not a refusal.
   */
  truncated?: boolean;
}

const PATH_MAX = 4096;
const SHOWN = 160;

/** A text for a message: control characters visible, long texts cut. */
function shown(text: string): string {
  const cut = text.length > SHOWN ? `${text.slice(0, SHOWN)}…` : text;
  return JSON.stringify(cut);
}

/** A refusal; line 0: of the diff as a whole. */
function refuse(lineNumber: number, what: string): never {
  const where = lineNumber > 0 ? `line ${lineNumber}: ${what}` : what;
  throw new BerthError(
    'invalid_input',
    `the diff was refused (${where}); Berth's diffs never look like this`,
    { line: lineNumber, refused: what },
  );
}

const C_ESCAPES: Record<string, number> = {
  a: 7,
  b: 8,
  t: 9,
  n: 10,
  v: 11,
  f: 12,
  r: 13,
  '"': 34,
  '\\': 92,
};

/**
 * A name as git writes it in a header: as it is, or C-quoted (`"a/t\tx"`, octal bytes for
 * non-ASCII). Returns the name and the rest of the text after it, or undefined when malformed.
 */
function readName(text: string): { name: string; bytes: string; rest: string } | undefined {
  if (!text.startsWith('"')) return undefined;
  const bytes: number[] = [];
  let i = 1;
  while (i < text.length) {
    const c = text[i] ?? '';
    if (c === '"') {
      const raw = Buffer.from(bytes);
      return { name: raw.toString('utf8'), bytes: raw.toString('latin1'), rest: text.slice(i + 1) };
    }
    if (c === '\\') {
      const next = text[i + 1] ?? '';
      const octal = /^[0-3][0-7]{2}/.exec(text.slice(i + 1, i + 4));
      if (octal) {
        bytes.push(parseInt(octal[0], 8));
        i += 4;
        continue;
      }
      const escaped = C_ESCAPES[next];
      if (escaped === undefined) return undefined;
      bytes.push(escaped);
      i += 2;
      continue;
    }
    const code = c.codePointAt(0) ?? 0;
    const char = String.fromCodePoint(code);
    bytes.push(...Buffer.from(char, 'utf8'));
    i += char.length;
  }
  return undefined;
}

/** Why a path (without its `a/` or `b/`) cannot be in a diff applied to a tree, if it cannot. */
export function unsafePathReason(path: string): string | undefined {
  if (path.includes('\0')) return 'a NUL in a path';
  if (path === '') return 'an empty path';
  if (path.length > PATH_MAX) return `a path longer than ${PATH_MAX} characters`;
  if (path.startsWith('/')) return `an absolute path ${shown(path)}`;
  for (const segment of path.split('/')) {
    if (segment === '') return `an empty segment in the path ${shown(path)}`;
    if (segment === '.' || segment === '..')
      return `a "${segment}" segment in the path ${shown(path)} (outside the tree)`;
  }
  // What NTFS and HFS+ read as ".git" (git's is_ntfs_dotgit, is_hfs_dotgit): a backslash is a
  // separator on Windows; an NTFS stream suffix (`.git::$INDEX_ALLOCATION`, `.git:x`), trailing
  // dots and spaces, the 8.3 short name, and characters HFS+ ignores are dropped.
  for (const segment of path.split(/[/\\]/)) {
    const folded = segment
      .replace(/[\u200b-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g, '')
      .replace(/:.*$/s, '')
      .replace(/[. ]+$/, '');
    if (/^\.git$/i.test(folded) || /^git~\d+$/i.test(folded))
      return `a path inside .git ${shown(path)}`;
  }
  return undefined;
}

function checkedPath(lineNumber: number, path: string): string {
  const reason = unsafePathReason(path);
  if (reason !== undefined) refuse(lineNumber, reason);
  return path;
}

/** A path as written unquoted: its bytes, refused when it is not UTF-8 (read as U+FFFD). */
function unquotedBytes(lineNumber: number, name: string): string {
  if (name.includes('\ufffd'))
    refuse(lineNumber, `a path that is not UTF-8, unquoted ${shown(name)}`);
  return Buffer.from(name, 'utf8').toString('latin1');
}

/** `a/P b/P` (both quoted or neither): P, or a refusal. Compared as bytes, never decoded. */
function gitLinePath(lineNumber: number, rest: string): { path: string; bytes: string } {
  if (rest.includes('\0')) refuse(lineNumber, 'a NUL in a path');
  if (rest.startsWith('"')) {
    const first = readName(rest);
    const second = first?.rest.startsWith(' ') ? readName(first.rest.slice(1)) : undefined;
    if (!first || !second || second.rest !== '')
      refuse(lineNumber, `a malformed diff --git line ${shown(rest)}`);
    if (!first.bytes.startsWith('a/') || !second.bytes.startsWith('b/'))
      refuse(lineNumber, `a diff --git line without a/ and b/ ${shown(rest)}`);
    if (first.bytes.slice(2) !== second.bytes.slice(2))
      refuse(lineNumber, `a diff --git line naming two paths (a rename or copy) ${shown(rest)}`);
    return { path: checkedPath(lineNumber, first.name.slice(2)), bytes: first.bytes.slice(2) };
  }
  // Unquoted: "a/" P " b/" P, the same P twice; a name with spaces is found by its length.
  const length = (rest.length - 5) / 2;
  const path = Number.isInteger(length) && length >= 0 ? rest.slice(2, 2 + length) : undefined;
  if (path === undefined || rest !== `a/${path} b/${path}`) {
    refuse(
      lineNumber,
      `a diff --git line naming two paths (a rename or copy), or malformed ${shown(rest)}`,
    );
  }
  return { path: checkedPath(lineNumber, path), bytes: unquotedBytes(lineNumber, path) };
}

/** The name of a `--- X` or `+++ X` line: `/dev/null`, or `PREFIX` + the section's path. */
function checkSideName(
  lineNumber: number,
  header: string,
  text: string,
  prefix: 'a/' | 'b/',
  path: string,
  bytes: string,
): void {
  if (text.includes('\0')) refuse(lineNumber, 'a NUL in a path');
  // git adds a tab after a name that holds a space (for GNU patch).
  const raw = text.endsWith('\t') ? text.slice(0, -1) : text;
  if (raw === '/dev/null') return;
  let name: string;
  let nameBytes: string;
  if (raw.startsWith('"')) {
    const read = readName(raw);
    if (!read || read.rest !== '') refuse(lineNumber, `a malformed ${header} line ${shown(raw)}`);
    name = read.name;
    nameBytes = read.bytes;
  } else {
    name = raw;
    nameBytes = unquotedBytes(lineNumber, raw);
  }
  if (!nameBytes.startsWith(prefix))
    refuse(lineNumber, `a ${header} path without ${prefix}: ${shown(name)}`);
  const side = name.slice(2);
  checkedPath(lineNumber, side);
  if (nameBytes.slice(2) !== bytes) {
    refuse(
      lineNumber,
      `a ${header} path ${shown(side)} that differs from its diff --git line ${shown(path)}`,
    );
  }
}

/** Lines git reads as copy or rename headers (never in a Berth diff, never hunk content). */
const COPY_OR_RENAME =
  /^(?:copy from |copy to |rename from |rename to |rename old |rename new |similarity index |dissimilarity index )/;
const EXTENDED =
  /^(?:old mode|new mode|deleted file mode|new file mode) [0-7]{6}$|^index [0-9a-f]+\.\.[0-9a-f]+(?: [0-7]{6})?$/;
/** A header line longer than this cannot hold a path git accepts (quoted: 4 characters a byte). */
const HEADER_LINE_MAX = 8 * PATH_MAX + 64;
const HUNK = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;
const BINARY_DATA = /^[A-Za-z][0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]+$/;

/** Lines read between two chances for the event loop (readDiffHeadersAsync). */
const LINES_PER_TURN = 2048;
/** Or this many characters, whichever comes first. */
const CHARACTERS_PER_TURN = 256 * 1024;

/**
 * Reads a diff's sections, refusing (BerthError `invalid_input`, naming the line and what it
 * holds) anything that is not shaped like a Berth diff. An empty diff has no sections.
 */
export function readDiffHeaders(diff: string, options: ReadDiffOptions = {}): DiffHeaders {
  const parse = parseDiff(diff, options);
  let step = parse.next();
  while (step.done !== true) step = parse.next();
  return step.value;
}

/**
 * The same, letting the event loop run every few thousand lines: for the orchestrator, where a
 * 20 MB diff must not hold up the egress proxies and `/health`.
 */
export async function readDiffHeadersAsync(
  diff: string,
  options: ReadDiffOptions = {},
): Promise<DiffHeaders> {
  const parse = parseDiff(diff, options);
  let step = parse.next();
  while (step.done !== true) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    step = parse.next();
  }
  return step.value;
}

/** The parser: yields now and then (see LINES_PER_TURN), returns the sections. */
function* parseDiff(diff: string, options: ReadDiffOptions): Generator<void, DiffHeaders> {
  const sections: DiffSection[] = [];
  if (diff === '') return { sections };
  if (!diff.endsWith('\n') && !options.truncated) refuse(1, 'no newline at the end of the diff');
  // A cursor over the lines (no array of them): the current line, its number and its place.
  let i = 0;
  let offset = 0;
  let end = 0;
  let line = '';
  const load = () => {
    if (offset >= diff.length) {
      end = offset;
      line = '';
      return;
    }
    const newline = diff.indexOf('\n', offset);
    end = newline === -1 ? diff.length : newline;
    line = diff.slice(offset, end);
  };
  /** Lines read since the last yield. */
  let read = 0;
  const next = () => {
    offset = end + 1;
    i++;
    read++;
    load();
  };
  /** Where the last turn ended: long lines end a turn by their size. */
  let turnStart = 0;
  const turnIsOver = () => {
    if (read < LINES_PER_TURN && offset - turnStart < CHARACTERS_PER_TURN) return false;
    read = 0;
    turnStart = offset;
    return true;
  };
  load();
  const endOfInput = () => offset >= diff.length;
  const truncatedEnd = () => {
    if (!options.truncated) refuse(i + 1, 'the diff ends in the middle of a section');
  };

  /** Refuses the copy or rename headers of the block starting at this line, naming them all. */
  const refuseMoves = (): never => {
    const found: string[] = [];
    let at = offset;
    while (at < diff.length && found.length < 4) {
      const newline = diff.indexOf('\n', at);
      const stop = newline === -1 ? diff.length : newline;
      const text = diff.slice(at, stop);
      if (at !== offset && (text.startsWith('diff --git ') || text.startsWith('@@ '))) break;
      if (COPY_OR_RENAME.test(text)) found.push(shown(text));
      at = stop + 1;
    }
    refuse(i + 1, `a copy or rename header ${found.join(', ')}`);
  };

  while (!endOfInput()) {
    if (turnIsOver()) yield;
    const header = line;
    if (!header.startsWith('diff --git ')) {
      if (COPY_OR_RENAME.test(header)) refuseMoves();
      refuse(i + 1, `a line outside any file section ${shown(header)}`);
    }
    if (header.length > HEADER_LINE_MAX) refuse(i + 1, `a path longer than ${PATH_MAX} characters`);
    const { path, bytes } = gitLinePath(i + 1, header.slice('diff --git '.length));
    const section: DiffSection = { path, bytes, symlink: false, start: offset, end: offset };
    sections.push(section);
    next();
    let sawOld = false;
    let sawNew = false;
    // Extended headers, then ---/+++, until a hunk, a binary patch or the next section.
    while (!endOfInput()) {
      const text = line;
      if (text.startsWith('diff --git ') || text.startsWith('@@ ') || text === 'GIT binary patch')
        break;
      if (COPY_OR_RENAME.test(text)) refuseMoves();
      if (text.length > HEADER_LINE_MAX)
        refuse(i + 1, `a header line longer than ${HEADER_LINE_MAX} characters`);
      if (text.startsWith('--- ') && !sawOld && !sawNew) {
        checkSideName(i + 1, '---', text.slice(4), 'a/', path, bytes);
        sawOld = true;
      } else if (text.startsWith('+++ ') && sawOld && !sawNew) {
        checkSideName(i + 1, '+++', text.slice(4), 'b/', path, bytes);
        sawNew = true;
      } else if (!EXTENDED.test(text) || sawOld) {
        refuse(i + 1, `an unexpected header line ${shown(text)}`);
      } else if (/^new (?:file )?mode 120000$/.test(text)) section.symlink = true;
      next();
    }
    if (sawOld !== sawNew) {
      if (endOfInput()) truncatedEnd();
      else refuse(i + 1, 'a --- line without its +++ line');
    }
    const binary = line === 'GIT binary patch';
    if (!endOfInput() && binary) {
      next();
      // One or two blocks (forward, reverse): "literal N" or "delta N", base85 lines, a blank.
      for (let block = 0; block < 2; block++) {
        if (endOfInput()) {
          if (block === 0) truncatedEnd();
          break;
        }
        if (!/^(?:literal|delta) \d+$/.test(line)) {
          if (block === 0) refuse(i + 1, `a malformed binary patch ${shown(line)}`);
          break;
        }
        next();
        while (!endOfInput() && line !== '') {
          if (!BINARY_DATA.test(line))
            refuse(i + 1, `a malformed binary patch line ${shown(line)}`);
          next();
          if (turnIsOver()) yield;
        }
        if (endOfInput()) truncatedEnd();
        else next();
      }
    } else {
      while (!endOfInput() && line.startsWith('@@ ')) {
        if (!sawNew) refuse(i + 1, 'a hunk without --- and +++ lines');
        const hunk = HUNK.exec(line);
        if (!hunk) refuse(i + 1, `a malformed hunk header ${shown(line)}`);
        let oldLines = hunk[2] === undefined ? 1 : Number(hunk[2]);
        let newLines = hunk[4] === undefined ? 1 : Number(hunk[4]);
        next();
        // git's own rule (apply.c parse_fragment): lines until both counts are used up.
        while (oldLines > 0 || newLines > 0) {
          if (endOfInput()) {
            truncatedEnd();
            break;
          }
          const kind = line.charCodeAt(0);
          if (Number.isNaN(kind) || kind === SPACE) {
            oldLines--;
            newLines--;
          } else if (kind === MINUS) oldLines--;
          else if (kind === PLUS) newLines--;
          else if (!line.startsWith('\\ '))
            refuse(i + 1, `a line that is not part of its hunk ${shown(line)}`);
          if (oldLines < 0 || newLines < 0) refuse(i + 1, 'a hunk longer than its @@ header says');
          next();
          if (turnIsOver()) yield;
        }
        // "\ No newline at end of file" after the hunk's last line.
        if (!endOfInput() && line.startsWith('\\ ')) next();
      }
    }
    section.end = Math.min(offset, diff.length);
    if (!endOfInput() && !line.startsWith('diff --git ')) {
      if (COPY_OR_RENAME.test(line)) refuseMoves();
      refuse(i + 1, `a line outside any file section ${shown(line)}`);
    }
  }
  checkPathsTogether(sections);
  return { sections };
}

/**
 * What the paths do together: a path below a symlink the same diff creates (names compared as a
 * case-insensitive file system compares them: `Docs` a symlink, then `docs/x` written through it
 * on macOS), and a directory made to look like a git repository (embedded-repository.ts).
 */
function checkPathsTogether(sections: readonly DiffSection[]): void {
  const links = new Set(sections.filter((s) => s.symlink).map((s) => foldName(s.path)));
  if (links.size > 0) {
    for (const section of sections) {
      const names = foldName(section.path).split('/');
      for (let k = 1; k < names.length; k++) {
        const below = names.slice(0, k).join('/');
        if (links.has(below)) {
          refuse(
            0,
            `a path ${shown(section.path)} below a symlink the same diff creates (${shown(below)}, names compared ignoring case)`,
          );
        }
      }
    }
  }
  const planted = plantedRepository(sections.map((s) => s.path));
  if (planted !== undefined) refuse(0, plantedMessage(planted));
}

/** The refusal of a diff that makes `dir` look like a git repository. */
export function plantedMessage(dir: string): string {
  return `paths that make ${shown(dir)} look like a git repository (a HEAD beside objects/ and refs/, or commondir), whose config git would run from there`;
}

const SPACE = 0x20;
const MINUS = 0x2d;
const PLUS = 0x2b;

/** The paths a diff's sections change, once each, in order. */
export function diffPaths(headers: DiffHeaders): string[] {
  return [...new Set(headers.sections.map((s) => s.path))];
}

/** The same paths as bytes (one latin1 character a byte): what git's `-z` output is compared to. */
export function diffPathBytes(headers: DiffHeaders): string[] {
  return [...new Set(headers.sections.map((s) => s.bytes))];
}
