import { describe, expect, it } from 'vitest';
import { SecretMasker } from '../../src/secrets/secret-masker.js';

const SECRET = 'sk-Live/9f+Q x&y=z';

describe('SecretMasker', () => {
  it('masks the value and its base64, base64url, URL-encoded and JSON-escaped forms', () => {
    const masker = new SecretMasker([SECRET, 'ab']);
    const text = [
      `plain ${SECRET}`,
      `b64 ${Buffer.from(SECRET).toString('base64')}`,
      `b64url ${Buffer.from(SECRET).toString('base64url')}`,
      `basic ${Buffer.from(`user:${SECRET}`).toString('base64')}`,
      `basic2 ${Buffer.from(`u1:${SECRET}`).toString('base64')}`,
      `url https://x.test/?t=${encodeURIComponent(SECRET)}`,
      `json ${JSON.stringify({ t: SECRET + '"' })}`,
      'short ab stays masked verbatim: cab',
    ].join('\n');
    const masked = masker.mask(text);
    expect(masked).not.toContain(SECRET);
    expect(masked).not.toContain(Buffer.from(SECRET).toString('base64').slice(0, 20));
    expect(masked).not.toContain(encodeURIComponent(SECRET));
    for (const prefix of ['', 'user:', 'u1:']) {
      const b64 = Buffer.from(prefix + SECRET).toString('base64');
      // No 8-character run of the secret's base64 survives at any alignment.
      for (let i = 0; i + 8 <= b64.length; i++) {
        const run = b64.slice(i, i + 8);
        const core = Buffer.from(SECRET).toString('base64');
        if (core.includes(run)) expect(masked).not.toContain(run);
      }
    }
    expect(masked).toContain('plain ***');
    expect(masked).toContain('short *** stays masked verbatim: c***');
  });

  it('leaves text without secrets alone', () => {
    expect(new SecretMasker([]).mask('nothing here')).toBe('nothing here');
    expect(new SecretMasker(['secret-value']).mask('nothing here')).toBe('nothing here');
  });

  it('masks a value split across streamed chunks at every possible split point', () => {
    const masker = new SecretMasker([SECRET]);
    const full = `start ${SECRET} middle ${encodeURIComponent(SECRET)} end ${SECRET}`;
    for (let a = 1; a < full.length; a++) {
      for (const b of [a + 1, a + 3, a + 7]) {
        if (b >= full.length) continue;
        const stream = masker.createStream();
        const out =
          stream.push(full.slice(0, a)) +
          stream.push(full.slice(a, b)) +
          stream.push(full.slice(b)) +
          stream.flush();
        expect(out).toBe('start *** middle *** end ***');
      }
    }
  });

  it('streams one character at a time, holding back less than the longest form', () => {
    const masker = new SecretMasker(['token-12345']);
    const stream = masker.createStream();
    let out = '';
    const input = 'a token-12345 b token-1234 c ' + 'x'.repeat(100);
    for (const char of input) out += stream.push(char);
    // Everything but a tail shorter than the longest form (its URL/base64 variants) is out already.
    expect(out.length).toBeGreaterThan(input.length - 8 - 20);
    out += stream.flush();
    expect(out).toBe('a *** b token-1234 c ' + 'x'.repeat(100));
  });

  it('holds back only what may start a value, so a short line is out at once', () => {
    const masker = new SecretMasker(['token-12345']);
    const stream = masker.createStream();
    expect(stream.push('first-line\n')).toBe('first-line\n');
    expect(stream.push('next: tok')).toBe('next: ');
    expect(stream.push('en-123')).toBe('');
    expect(stream.push('45 done\n')).toBe('*** done\n');
    expect(stream.push('tokenless\n')).toBe('tokenless\n');
    expect(stream.flush()).toBe('');
  });

  it('masks each line of a multi-line value on its own (a key with other line breaks, or part of it)', () => {
    const lines = ['QyNTUxOQAAACDqZx0cD1kXbW0Qm6mJc9Hq', 'EgAAAAtzc2gtZWQyNTUxOQAAACDqZx0c'];
    const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\nshort\n-----END OPENSSH PRIVATE KEY-----`;
    const masker = new SecretMasker([key]);
    expect(masker.mask(`second line: ${lines[1]}\n`)).toBe('second line: ***\n');
    expect(masker.mask(lines.join('\r\n'))).toBe('***\r\n***');
    // The armour and short lines alone are not values.
    expect(masker.mask('-----END OPENSSH PRIVATE KEY----- short')).toBe(
      '-----END OPENSSH PRIVATE KEY----- short',
    );
  });
});
