import { describe, expect, it } from 'vitest';
import { ChunkedDecoder, parseResponseHead } from '../../src/egress/http1-response.js';

const head = (text: string) => Buffer.from(text, 'latin1');

describe('response heads from upstream servers', () => {
  it('reads status, headers and a Content-Length', () => {
    const parsed = parseResponseHead(
      head('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length:  12 \r\n\r\n'),
      'GET',
    );
    expect(parsed).toEqual({
      ok: true,
      head: {
        status: 200,
        reason: 'OK',
        headers: [
          ['content-type', 'text/plain'],
          ['content-length', '12'],
        ],
        framing: { kind: 'length', length: 12 },
        closes: false,
      },
    });
  });

  it('keeps the length of a bodiless response as information, never as framing', () => {
    const parse = (text: string, method = 'GET') => {
      const parsed = parseResponseHead(head(text), method);
      return parsed.ok ? parsed.head : undefined;
    };
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n', 'HEAD')).toMatchObject({
      framing: { kind: 'none' },
      declaredLength: 1000,
    });
    expect(parse('HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n')).toMatchObject({
      framing: { kind: 'none' },
      declaredLength: 9,
    });
    // Only one plain decimal value is passed on; 204 and 1xx never carry one.
    expect(
      parse('HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 8\r\n\r\n', 'HEAD')
        ?.declaredLength,
    ).toBeUndefined();
    expect(parse('HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n')?.declaredLength).toBe(
      undefined,
    );
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n')?.declaredLength).toBe(undefined);
  });

  it('does not reuse a connection whose response had Content-Length and chunked', () => {
    const parsed = parseResponseHead(
      head('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n'),
      'GET',
    );
    expect(parsed).toMatchObject({
      ok: true,
      head: { framing: { kind: 'chunked' }, closes: true },
    });
  });

  it('decides the framing as RFC 9112 says', () => {
    const framing = (text: string, method = 'GET') => {
      const parsed = parseResponseHead(head(text), method);
      return parsed.ok ? parsed.head.framing : parsed.reason;
    };
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'HEAD')).toEqual({
      kind: 'none',
    });
    expect(framing('HTTP/1.1 204 No Content\r\n\r\n')).toEqual({ kind: 'none' });
    expect(framing('HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n')).toEqual({
      kind: 'none',
    });
    expect(framing('HTTP/1.1 100 Continue\r\n\r\n')).toEqual({ kind: 'none' });
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')).toEqual({ kind: 'none' });
    // Transfer-Encoding wins over Content-Length; a last coding other than chunked reads to close.
    expect(
      framing('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n'),
    ).toEqual({ kind: 'chunked' });
    expect(framing('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n')).toEqual({
      kind: 'close',
    });
    expect(framing('HTTP/1.1 200 OK\r\n\r\n')).toEqual({ kind: 'close' });
    // The same length twice is one length; two different ones are refused.
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n')).toEqual({
      kind: 'length',
      length: 7,
    });
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n')).toMatch(
      /Content-Length/,
    );
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n')).toMatch(/Content-Length/);
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n')).toMatch(/Content-Length/);
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n')).toMatch(/Content-Length/);
    expect(framing('HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n')).toMatch(
      /Content-Length/,
    );
  });

  it('knows when the server will close', () => {
    const closes = (text: string) => {
      const parsed = parseResponseHead(head(text), 'GET');
      return parsed.ok && parsed.head.closes;
    };
    expect(closes('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n')).toBe(true);
    expect(closes('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n')).toBe(true);
    expect(closes('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n')).toBe(
      false,
    );
    expect(closes('HTTP/1.1 200 OK\r\n\r\n')).toBe(true);
  });

  it('refuses what is not strictly HTTP/1.x', () => {
    const refused = [
      'HTTP/2 200 OK\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'HTTP/1.1 099 Odd\r\n\r\n',
      'http/1.1 200 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nName : x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n',
    ];
    for (const text of refused) expect(parseResponseHead(head(text), 'GET').ok, text).toBe(false);
    expect(parseResponseHead(Buffer.alloc(70_000, 0x41), 'GET').ok).toBe(false);
  });
});

describe('chunked bodies', () => {
  it('decodes across any split of the input, with extensions and trailers', () => {
    const wire = Buffer.from('5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n');
    for (let split = 0; split <= wire.length; split++) {
      const decoder = new ChunkedDecoder();
      const out = [...decoder.push(wire.subarray(0, split)), ...decoder.push(wire.subarray(split))];
      expect(Buffer.concat(out).toString()).toBe('hello, world');
      expect(decoder.done).toBe(true);
      expect(decoder.overrun).toBe(false);
    }
  });

  it('reports bytes after the last chunk and refuses malformed framing', () => {
    const after = new ChunkedDecoder();
    after.push(Buffer.from('0\r\n\r\nHTTP/1.1 200 OK\r\n'));
    expect(after.done).toBe(true);
    expect(after.overrun).toBe(true);
    for (const wire of [
      'zz\r\n',
      '5\r\nhello!\r\n',
      '5\nhello\r\n',
      '1234567890abcdef0\r\n',
      `${'1'.repeat(5000)}`,
    ]) {
      expect(() => new ChunkedDecoder().push(Buffer.from(wire)), wire).toThrow();
    }
  });
});
