/**
 * Text from a sandbox (logs, the diff, summaries, error messages that quote them), made inert
 * before the CLI writes it for a person.
 *
 * Threat model. Everything a sandbox produces is written by code the agent controls, and the
 * person reads it in a terminal before deciding to `task apply` or `task pr`. Control characters
 * are instructions to that terminal: an escape sequence can erase or rewrite lines of the diff
 * being reviewed (`ESC [2K`, cursor movement), retitle the window, or write to the clipboard
 * (OSC 52), and a carriage return can overwrite the start of a line; bidirectional-override
 * characters can reorder what a line shows. So every C0 control but newline and tab, DEL, every
 * C1 control (U+0080-U+009F, which some terminals obey as ESC sequences) and the bidi controls are
 * written as visible text: `\x1b`, `\x9b`, `\u202e`. A backslash is left as it is, so sandbox
 * text can imitate such an escape; it cannot produce the real character.
 *
 * Where: everything `CliContext.out`/`err` print, the progress of `exec --wait`/`run`/`env test`/
 * follow-ups, `task logs` (with or without `--follow`), `task show`, and `task diff` when its
 * standard output is a terminal. `task diff` to a pipe or file is the exact patch, byte for byte
 * (it is for `git apply`), and `--raw` asks for the text as it is everywhere. JSON output keeps
 * its values exactly and escapes these characters as JSON `\u` escapes.
 */

/** C0 but tab and newline, DEL, C1, and the bidi controls (embedding, override, isolate, marks). */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** The same, minus what JSON.stringify escapes itself (C0), plus the line separators JS reads. */
const JSON_UNESCAPED = /[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

function shown(char: string): string {
  const code = char.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * How carriage returns are written: `newline` for logs (a CRLF is one line end; a lone CR, a
 * progress bar redrawing its line, starts a new line, so nothing is overwritten), `visible` for
 * the diff (a CR is part of the file's content: `\x0d`).
 */
export type CarriageReturns = 'newline' | 'visible';

/** `text` with every control character (but newline and tab) written visibly. */
export function inertText(text: string, carriageReturns: CarriageReturns = 'newline'): string {
  const lines = carriageReturns === 'newline' ? text.replace(/\r\n?/g, '\n') : text;
  return lines.replace(CONTROL, shown);
}

/** JSON text with the characters above escaped as `\u` escapes: still valid, the same values. */
export function inertJson(json: string): string {
  return json.replace(
    JSON_UNESCAPED,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Text arriving in chunks (a followed log): a CRLF split between two chunks is one line end. */
export interface InertStream {
  push(text: string): string;
}

export function createInertStream(): InertStream {
  let afterCarriageReturn = false;
  return {
    push(text: string): string {
      const rest = afterCarriageReturn && text.startsWith('\n') ? text.slice(1) : text;
      if (text !== '') afterCarriageReturn = text.endsWith('\r');
      return inertText(rest, 'newline');
    },
  };
}

/** Whether a stream is a terminal (what `task diff` asks before writing the exact patch). */
export function isTerminal(stream: NodeJS.WritableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}
