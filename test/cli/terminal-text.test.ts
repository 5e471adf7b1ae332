import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import {
  createInertStream,
  inertJson,
  inertText,
  isTerminal,
} from '../../src/cli/terminal-text.js';
import { CliContext } from '../../src/cli/cli-context.js';
import { main } from '../../src/cli/main.js';

/** Issue 21 item 5: text from a sandbox is inert on a terminal unless `--raw` asks otherwise. */

const ESC = '\x1b';
/** Erase the line, move up, erase again: hides the line before it. */
const ERASE = `${ESC}[2K${ESC}[1A${ESC}[2K`;
/** OSC 52: put "rm -rf ~" on the clipboard. */
const OSC52 = `${ESC}]52;c;${Buffer.from('rm -rf ~').toString('base64')}\x07`;

/** Every character the terminal would obey (C0 but tab and newline, DEL, C1, bidi controls). */
const OBEYED = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

function sink(tty = false): Writable & { text: string; isTTY?: boolean } {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      stream.text += chunk.toString();
      done();
    },
  }) as Writable & { text: string; isTTY?: boolean };
  stream.text = '';
  if (tty) stream.isTTY = true;
  return stream;
}

describe('inertText', () => {
  it('shows erase-line and cursor sequences as text', () => {
    const out = inertText(`rm -rf ~\n${ERASE}harmless\n`);
    expect(out).toBe('rm -rf ~\n\\x1b[2K\\x1b[1A\\x1b[2Kharmless\n');
    expect(out).not.toMatch(OBEYED);
  });

  it('shows an OSC 52 clipboard write as text', () => {
    expect(inertText(OSC52)).toBe('\\x1b]52;c;cm0gLXJmIH4=\\x07');
  });

  it('shows C1 controls, DEL, NUL and bidi overrides; keeps tab, newline and other text', () => {
    expect(inertText('\u009b2J\u009d0;title\u009c')).toBe('\\x9b2J\\x9d0;title\\x9c');
    expect(inertText('a\x7fb\x00c\x08')).toBe('a\\x7fb\\x00c\\x08');
    expect(inertText('x = "\u202e\u2066admin\u2069\u202c"')).toBe(
      'x = "\\u202e\\u2066admin\\u2069\\u202c"',
    );
    expect(inertText('\tindented\nnext — ünïcode ✓ 日本\n')).toBe(
      '\tindented\nnext — ünïcode ✓ 日本\n',
    );
  });

  it('leaves no character a terminal obeys, for every code unit', () => {
    let all = '';
    for (let code = 0; code < 0x10000; code++) all += String.fromCharCode(code);
    expect(inertText(all)).not.toMatch(OBEYED);
    expect(inertText(all, 'visible')).not.toMatch(OBEYED);
  });

  it('makes carriage returns line ends in logs, and visible in a diff', () => {
    expect(inertText('a\r\nb\r\n')).toBe('a\nb\n');
    expect(inertText('10%\r50%\r100%\n')).toBe('10%\n50%\n100%\n');
    // A line that overwrites its own start cannot hide it.
    expect(inertText('+rm -rf ~\r+# comment\n', 'visible')).toBe('+rm -rf ~\\x0d+# comment\n');
  });

  it('keeps a CRLF split between two chunks one line end', () => {
    const stream = createInertStream();
    expect(stream.push('one\r') + stream.push('\ntwo\r') + stream.push('three\n')).toBe(
      'one\ntwo\nthree\n',
    );
  });
});

describe('inertJson', () => {
  it('escapes what JSON.stringify leaves raw, keeping the values', () => {
    const value = { text: `${OSC52}\u009b\u202e\u2028x`, [`k\u009b`]: 1 };
    const json = inertJson(JSON.stringify(value));
    expect(json).not.toMatch(OBEYED);
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe('the CLI writes inert text unless --raw', () => {
  it('makes error messages quoting a sandbox inert', async () => {
    const out = sink(true);
    const err = sink(true);
    // A server that is not there: the message quotes the URL given, control characters and all.
    const code = await main(
      [
        'node',
        'berth',
        'task',
        'show',
        'x',
        '--url',
        `http://127.0.0.1:1/${ESC}[2J`,
        '--token',
        't',
      ],
      { stdout: out, stderr: err },
    );
    expect(code).not.toBe(0);
    expect(err.text).toContain('http://127.0.0.1:1/\\x1b[2J');
    expect(err.text).not.toMatch(OBEYED);
  });

  it('CliContext: out/err/json inert; --raw writes as it came; a terminal is told apart', () => {
    const out = sink(true);
    const ctx = new CliContext({ stdout: out, stderr: sink() });
    ctx.out(`summary ${ERASE}`);
    ctx.json({ log: `${OSC52}\u009b` });
    const write = ctx.streamTo(out);
    write('a\r');
    write('\nb\n');
    expect(out.text).not.toMatch(OBEYED);
    expect(out.text).toContain('summary \\x1b[2K');
    expect(out.text).toContain('a\nb\n');
    ctx.raw = true;
    ctx.out(ERASE);
    ctx.streamTo(out)(OSC52);
    expect(out.text.endsWith(`${ERASE}\n${OSC52}`)).toBe(true);
    expect(isTerminal(out)).toBe(true);
    expect(isTerminal(sink())).toBe(false);
  });
});
