import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { SecretMasker } from '../../src/secrets/secret-masker.js';
import { PhaseOutput } from '../../src/lifecycle/phase-output.js';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';

/**
 * Issue 21 item 6: the ways a script printed a secret past the masker, each masked now. The
 * encodings are made by the real tools where there is one (`base64`, bash's `printf %q`).
 */

const SECRET = "tok_Live-9f!Q(x)*y'z pw";
const ANSI = /\x1b\[[0-9;]*m/g;

function maskedEverywhere(masker: SecretMasker, text: string): string {
  // Also as a stream cut at every point: the same result.
  const whole = masker.mask(text);
  for (let cut = 1; cut < text.length; cut += 3) {
    const stream = masker.createStream();
    const streamed =
      stream.push(text.slice(0, cut)) + stream.push(text.slice(cut)) + stream.flush();
    expect(streamed, `cut at ${cut}`).toBe(whole);
  }
  return whole;
}

/** Every 6-character run of `encoded` that stands for the secret's characters alone. */
function runsOf(encoded: string, length = 6): string[] {
  const runs: string[] = [];
  for (let i = 0; i + length <= encoded.length; i++) runs.push(encoded.slice(i, i + length));
  return runs;
}

describe('SecretMasker against evasions', () => {
  const masker = new SecretMasker([SECRET]);

  it('masks a value with ANSI colour codes between its characters', () => {
    const coloured = [...SECRET].map((char, i) => `\x1b[3${i % 8}m${char}`).join('') + '\x1b[0m';
    const out = maskedEverywhere(masker, `token: ${coloured} done\n`);
    expect(out.replace(ANSI, '')).toBe('token: *** done\n');
    const oneCode = `${SECRET.slice(0, 5)}\x1b[1m${SECRET.slice(5)}`;
    expect(maskedEverywhere(masker, `x ${oneCode} y`)).toBe('x *** y');
  });

  it('masks a value split half on stdout and half on stderr', () => {
    const events: AttemptEventBody[] = [];
    const output = new PhaseOutput(masker, (event) => events.push(event));
    const half = Math.floor(SECRET.length / 2);
    output.onOutput({ stream: 'stdout', data: Buffer.from(`a ${SECRET.slice(0, half)}`) });
    output.onOutput({ stream: 'stderr', data: Buffer.from(`${SECRET.slice(half)} b\n`) });
    output.onOutput({ stream: 'stdout', data: Buffer.from('next line\n') });
    output.end();
    const logs = events.filter((e) => e.type === 'log') as Array<{ stream: string; text: string }>;
    const all = logs.map((e) => e.text).join('');
    expect(all).not.toContain(SECRET.slice(0, half));
    expect(all).not.toContain(SECRET.slice(half));
    const of = (stream: string) =>
      logs
        .filter((e) => e.stream === stream)
        .map((e) => e.text)
        .join('');
    expect(of('stdout')).toBe('a ***next line\n');
    expect(of('stderr')).toBe('*** b\n');
    expect(output.tail()).toBe('a ****** b\nnext line');
  });

  it('masks `base64` output wrapped at 76 columns, wherever the line breaks fall', () => {
    for (let pad = 0; pad < 60; pad += 1) {
      const input = `${'p'.repeat(pad)}password=${SECRET}&rest=${'q'.repeat(30)}`;
      const wrapped = execFileSync('base64', { input }).toString();
      expect(wrapped.split('\n')[0]).toHaveLength(76);
      const out = maskedEverywhere(masker, wrapped);
      expect(out.split('\n').length).toBe(wrapped.split('\n').length);
      const unwrapped = out.replaceAll('\n', '');
      for (let offset = 0; offset < 3; offset++) {
        const core = Buffer.concat([Buffer.alloc(offset), Buffer.from(SECRET)])
          .toString('base64')
          .slice(4, -4);
        for (const run of runsOf(core, 8)) expect(unwrapped, `pad ${pad}`).not.toContain(run);
      }
    }
  });

  it("masks URL encodings: lower-case hex, `!'()*` encoded, every character encoded", () => {
    const strict = encodeURIComponent(SECRET).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
    const lower = strict.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase());
    const every = [...Buffer.from(SECRET)].map((b) => `%${b.toString(16)}`).join('');
    const plus = encodeURIComponent(SECRET).replaceAll('%20', '+');
    for (const encoded of [strict, lower, every, plus]) {
      expect(maskedEverywhere(masker, `https://x.test/?t=${encoded}&u=1`)).toBe(
        'https://x.test/?t=***&u=1',
      );
    }
    const accents = new SecretMasker(['pässwörd-ünïcode']);
    const lowerUtf8 = encodeURIComponent('pässwörd-ünïcode').toLowerCase();
    expect(accents.mask(`q=${lowerUtf8}`)).toBe('q=***');
  });

  it('masks JSON \\u escapes: ensure_ascii output, escaped letters, escaped punctuation', () => {
    const accents = new SecretMasker(['pässwörd-ünïcode']);
    const ascii = 'p\\u00e4ssw\\u00f6rd-\\u00fcn\\u00efcode';
    expect(maskedEverywhere(accents, `{"password": "${ascii}"}`)).toBe('{"password": "***"}');
    const letters = [...SECRET].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    expect(maskedEverywhere(masker, `{"t":"${letters.join('')}"}`)).toBe('{"t":"***"}');
    const go = new SecretMasker(['a<b>c&d-secret']);
    expect(go.mask('{"t":"a\\u003cb\\u003ec\\u0026d-secret"}')).toBe('{"t":"***"}');
  });

  it('masks `printf %q` output', () => {
    const quoted = execFileSync('bash', ['-c', 'printf %q "$S"'], {
      env: { S: SECRET },
    }).toString();
    expect(quoted).not.toBe(SECRET);
    expect(quoted).toContain('\\ ');
    expect(maskedEverywhere(masker, `run ${quoted} now`)).toBe('run *** now');
  });

  it('still leaves text without a secret alone, escapes and all', () => {
    const text = 'colour \x1b[31mred\x1b[0m 100%25 done \\u0041 C:\\path\nnext\r\n';
    expect(masker.mask(text)).toBe(text);
    const stream = masker.createStream();
    expect(stream.push(text) + stream.flush()).toBe(text);
  });

  it('holds back no more than the limit when escape sequences follow a possible start', () => {
    const stream = masker.createStream();
    let out = stream.push(SECRET.slice(0, 6));
    for (let i = 0; i < 2000; i++) out += stream.push('\x1b[0m');
    out += stream.push(' end\n') + stream.flush();
    expect(out.length).toBeGreaterThan(8000);
    expect(out.endsWith(' end\n')).toBe(true);
  });
});
