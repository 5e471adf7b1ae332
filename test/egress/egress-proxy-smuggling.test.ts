/**
 * The request-smuggling suite (issue 18): every trick in the table is sent by a "sandbox" on
 * each of the proxy's three request paths (intercepted on the native TLS legs, intercepted on
 * Node's TLS, plain HTTP) to a strict upstream that logs every request it parsed
 * (support/strict-upstream.ts). For every case:
 * - the upstream parsed exactly the requests the proxy's decision log allowed, in order, and
 *   found no ambiguous framing in what the proxy sent;
 * - each request is either refused (400 or 403, then the connection closes; the decision log
 *   names the rule) or forwarded under correct framing (the upstream saw the intended body);
 * - the sandbox's side stays in step: every byte it gets back parses as whole responses.
 * The second table sends the same kinds of tricks from the upstream, in responses.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  PROXY_PATHS,
  addressing,
  converse,
  type Conversation,
  type ProxyPath,
  type Target,
} from './support/proxy-paths.js';
import { startStrictUpstream, type StrictUpstream } from './support/strict-upstream.js';
import {
  startTestProxy,
  startTestWorld,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

interface Addressing {
  host: string;
  prefix: string;
  path: ProxyPath;
}

interface RequestCase {
  name: string;
  /** The bytes the sandbox sends. */
  send: (a: Addressing) => string;
  /** Sent after a `100 Continue`. */
  afterContinue?: string;
  /** What the upstream must parse, in order: "METHOD target body". */
  forwarded?: string[];
  /** After the forwarded ones, a refusal whose decision names a rule matching this. */
  refused?: RegExp;
  /** The proxy keeps waiting for the body; the sandbox closes after a short silence. */
  clientGivesUp?: boolean;
  /** Only on these paths (the case means something else, or nothing, on the others). */
  paths?: ProxyPath[];
}

/** A request line and headers (CRLF), then the body as given. */
function request(
  a: Addressing,
  method: string,
  path: string,
  headers: string[] = [],
  body = '',
  version = '1.1',
): string {
  return `${method} ${a.prefix}${path} HTTP/${version}\r\nHost: ${a.host}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
}

/** A whole second request, for bodies that try to become one. */
const smuggled = (a: Addressing, method = 'PUT') =>
  `${method} ${a.prefix}/smuggled HTTP/1.1\r\nHost: ${a.host}\r\nContent-Length: 0\r\n\r\n`;

const chunk = (data: string) => `${data.length.toString(16)}\r\n${data}\r\n`;

const FRAMING = /^(framing|protocol)$/;

const REQUEST_CASES: RequestCase[] = [
  // ---- CL.TE and TE.CL: both headers, each side hoping the other one wins
  {
    name: 'CL.TE: Content-Length covers a chunked terminator and a smuggled prefix',
    send: (a) =>
      request(
        a,
        'POST',
        '/cl-te',
        ['Content-Length: 6', 'Transfer-Encoding: chunked'],
        '0\r\n\r\nG',
      ),
    refused: FRAMING,
  },
  {
    name: 'TE.CL: a chunk holds a request, Content-Length stops before it',
    send: (a) => {
      const inner = smuggled(a);
      return request(
        a,
        'POST',
        '/te-cl',
        ['Transfer-Encoding: chunked', 'Content-Length: 3'],
        `${chunk(inner)}0\r\n\r\n`,
      );
    },
    refused: FRAMING,
  },
  // ---- TE.TE: obfuscated Transfer-Encoding
  ...[
    ['xchunked', 'Transfer-Encoding: xchunked'],
    ['chunked, identity', 'Transfer-Encoding: chunked, identity'],
    ['identity, chunked', 'Transfer-Encoding: identity, chunked'],
    ['chunked with a quoted parameter', 'Transfer-Encoding: chunked;q=1'],
    ['two TE headers', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: identity'],
    ['two TE headers, both chunked', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked'],
    ['an obs-fold continuation', 'Transfer-Encoding: identity\r\n chunked'],
    ['an obs-fold hiding TE in another header', 'X-Pad: a\r\n Transfer-Encoding: chunked'],
    ['a space before the colon', 'Transfer-Encoding : chunked'],
    ['a tab before the colon', 'Transfer-Encoding\t: chunked'],
    ['a vertical tab in the value', 'Transfer-Encoding: \x0bchunked'],
  ].flatMap(([label, header]): RequestCase[] => [
    {
      name: `TE.TE: ${label}, with a Content-Length`,
      send: (a) => {
        const inner = smuggled(a);
        return request(
          a,
          'POST',
          '/te-te',
          [header ?? '', 'Content-Length: 4'],
          `${chunk(inner)}0\r\n\r\n`,
        );
      },
      refused: FRAMING,
    },
    {
      name: `TE.TE: ${label}, alone`,
      send: (a) => {
        const inner = smuggled(a);
        return request(a, 'POST', '/te-te', [header ?? ''], `${chunk(inner)}0\r\n\r\n`);
      },
      refused: FRAMING,
    },
  ]),
  {
    name: 'TE with a leading space is chunked, re-chunked upstream',
    send: (a) =>
      request(a, 'POST', '/ows', ['Transfer-Encoding:  chunked'], `${chunk('abc')}0\r\n\r\n`),
    forwarded: ['POST /ows abc'],
  },
  {
    name: 'TE with a tab before the value is chunked, re-chunked upstream',
    send: (a) =>
      request(a, 'POST', '/tab', ['Transfer-Encoding:\tchunked'], `${chunk('abc')}0\r\n\r\n`),
    forwarded: ['POST /tab abc'],
  },
  {
    name: 'TE in capitals is chunked, re-chunked upstream',
    send: (a) =>
      request(a, 'POST', '/caps', ['TRANSFER-ENCODING: CHUNKED'], `${chunk('abc')}0\r\n\r\n`),
    forwarded: ['POST /caps abc'],
  },
  // ---- Content-Length variants
  {
    name: 'two equal Content-Lengths',
    send: (a) => request(a, 'POST', '/cl', ['Content-Length: 5', 'Content-Length: 5'], 'hello'),
    refused: FRAMING,
  },
  {
    name: 'two conflicting Content-Lengths',
    send: (a) =>
      request(a, 'POST', '/cl', ['Content-Length: 0', 'Content-Length: 40'], smuggled(a)),
    refused: FRAMING,
  },
  ...[
    ['a list', 'Content-Length: 5, 5'],
    ['a sign', 'Content-Length: +5'],
    ['a negative length', 'Content-Length: -5'],
    ['inner spaces', 'Content-Length: 5 5'],
    ['hexadecimal', 'Content-Length: 0x5'],
    ['a space before the colon', 'Content-Length : 5'],
    ['an overflowing length', 'Content-Length: 99999999999999999999999'],
    ['a length past 2^53', 'Content-Length: 9007199254740993'],
  ].map(([label, header]): RequestCase => ({
    name: `Content-Length with ${label}`,
    send: (a) => request(a, 'POST', '/cl', [header ?? ''], 'hello'),
    refused: FRAMING,
  })),
  {
    name: 'Content-Length with leading zeros means the same length, re-framed',
    send: (a) => request(a, 'POST', '/zeros', ['Content-Length: 005'], 'hello'),
    forwarded: ['POST /zeros hello'],
  },
  {
    name: 'Content-Length with spaces around it means the same length, re-framed',
    send: (a) => request(a, 'POST', '/spaces', ['Content-Length:   5   '], 'hello'),
    forwarded: ['POST /spaces hello'],
  },
  {
    name: 'a Content-Length shorter than the data: the rest is the next request, checked',
    send: (a) => request(a, 'POST', '/short', ['Content-Length: 2'], `hi${smuggled(a)}`),
    forwarded: ['POST /short hi'],
    refused: /^method$/,
  },
  // ---- chunk sizes
  ...[
    ['overflowing size', 'fffffffffffffffff1\r\nabc\r\n0\r\n\r\n'],
    ['a 0x prefix', '0x3\r\nabc\r\n0\r\n\r\n'],
    ['a sign', '+3\r\nabc\r\n0\r\n\r\n'],
    ['a leading space', ' 3\r\nabc\r\n0\r\n\r\n'],
    ['a negative size', '-3\r\nabc\r\n0\r\n\r\n'],
    ['a non-hex digit', '3g\r\nabc\r\n0\r\n\r\n'],
    ['data longer than its size', '3\r\nabcdef\r\n0\r\n\r\n'],
    ['no CRLF after the data', '3\r\nabc0\r\n\r\n'],
    ['a bare LF after the size', '3\nabc\r\n0\r\n\r\n'],
    ['a bare CR in an extension', '3;a\rb\r\nabc\r\n0\r\n\r\n'],
    ['an extension with a bare LF', '3;a\nGET /x HTTP/1.1\r\nabc\r\n0\r\n\r\n'],
  ].map(([label, body]): RequestCase => ({
    name: `chunk size with ${label}`,
    send: (a) => request(a, 'POST', '/chunks', ['Transfer-Encoding: chunked'], body ?? ''),
    refused: FRAMING,
  })),
  {
    name: 'chunk size of 16 hex digits: the rest is chunk data, never a request',
    send: (a) =>
      request(
        a,
        'POST',
        '/huge',
        ['Transfer-Encoding: chunked'],
        `ffffffffffffffff\r\nabc\r\n0\r\n\r\n${smuggled(a)}`,
      ),
    // The proxy waits for the rest of the chunk; the sandbox gives up and the request is cut.
    clientGivesUp: true,
    refused: /^framing$/,
  },
  {
    name: 'chunk extensions are dropped, the data re-chunked',
    send: (a) =>
      request(
        a,
        'POST',
        '/ext',
        ['Transfer-Encoding: chunked'],
        '3;name=value\r\nabc\r\n2;q="x;y"\r\nde\r\n0;last\r\n\r\n',
      ),
    forwarded: ['POST /ext abcde'],
  },
  {
    name: 'upper-case hex and leading zeros in chunk sizes',
    send: (a) =>
      request(
        a,
        'POST',
        '/hex',
        ['Transfer-Encoding: chunked'],
        `00A\r\n${'x'.repeat(10)}\r\n0000\r\n\r\n`,
      ),
    forwarded: [`POST /hex ${'x'.repeat(10)}`],
  },
  {
    name: 'a Content-Length in the trailers',
    send: (a) =>
      request(
        a,
        'POST',
        '/trailers',
        ['Transfer-Encoding: chunked'],
        `${chunk('abc')}0\r\nContent-Length: 40\r\n\r\n${smuggled(a)}`,
      ),
    refused: FRAMING,
  },
  {
    name: 'trailers are dropped',
    send: (a) =>
      request(
        a,
        'POST',
        '/trailers',
        ['Transfer-Encoding: chunked', 'Trailer: X-Later'],
        `${chunk('abc')}0\r\nX-Later: 1\r\n\r\n`,
      ),
    forwarded: ['POST /trailers abc'],
  },
  // ---- line ends and header names
  {
    name: 'bare LF line ends',
    send: (a) => request(a, 'POST', '/lf', ['Content-Length: 5'], 'hello').replace(/\r\n/g, '\n'),
    refused: FRAMING,
  },
  {
    name: 'a bare LF hiding a Transfer-Encoding line',
    send: (a) =>
      request(
        a,
        'POST',
        '/lf',
        ['X-Pad: a\nTransfer-Encoding: chunked', 'Content-Length: 4'],
        `${chunk('abc')}0\r\n\r\n`,
      ),
    refused: FRAMING,
  },
  {
    name: 'a bare CR in a header value',
    send: (a) =>
      request(
        a,
        'POST',
        '/cr',
        ['X-Pad: a\rTransfer-Encoding: chunked', 'Content-Length: 5'],
        'hello',
      ),
    refused: FRAMING,
  },
  {
    name: 'a NUL in a header name',
    send: (a) =>
      request(a, 'POST', '/nul', ['Transfer\0-Encoding: chunked', 'Content-Length: 5'], 'hello'),
    refused: FRAMING,
  },
  {
    name: 'a NUL in a header value',
    send: (a) => request(a, 'POST', '/nul', ['X-Pad: a\0b', 'Content-Length: 5'], 'hello'),
    refused: FRAMING,
  },
  {
    name: 'a space before the colon of Host',
    send: (a) => `GET ${a.prefix}/h HTTP/1.1\r\nHost : ${a.host}\r\n\r\n`,
    refused: FRAMING,
  },
  {
    name: 'a header line without a colon',
    send: (a) => request(a, 'GET', '/nocolon', ['Transfer-Encoding chunked']),
    refused: FRAMING,
  },
  {
    name: 'a request line with a bare LF inside',
    send: (a) => `GET ${a.prefix}/a\nHost: x HTTP/1.1\r\nHost: ${a.host}\r\n\r\n`,
    refused: /^(framing|protocol|host)$/,
  },
  // ---- targets and Host
  {
    name: 'an absolute-form target inside a tunnel',
    send: (a) => `GET https://other-allowed.test/abs HTTP/1.1\r\nHost: ${a.host}\r\n\r\n`,
    refused: /^target$/,
    paths: ['native', 'node'],
  },
  {
    name: 'an absolute-form target whose authority differs from Host',
    send: (a) =>
      `GET ${a.prefix.replace('allowed.test', 'other-allowed.test')}/abs HTTP/1.1\r\nHost: ${a.host}\r\n\r\n`,
    refused: /^host$/,
    paths: ['plain'],
  },
  {
    name: 'an absolute-form target with userinfo naming the allowed host',
    send: (a) =>
      `GET http://allowed.test@other-allowed.test:${a.host.split(':')[1] ?? ''}/abs HTTP/1.1\r\nHost: ${a.host}\r\n\r\n`,
    refused: /^(target|host)$/,
    paths: ['plain'],
  },
  {
    name: 'a Host for another name on the same address',
    send: (a) => `GET ${a.prefix}/vhost HTTP/1.1\r\nHost: other-allowed.test\r\n\r\n`,
    refused: /^host$/,
  },
  {
    name: 'two Host headers',
    send: (a) => request(a, 'GET', '/hosts', [`Host: other-allowed.test`]),
    refused: /^(host|framing|protocol)$/,
  },
  // ---- Expect: 100-continue
  {
    name: 'Expect: 100-continue, allowed: the body follows the upstream 100',
    send: (a) => request(a, 'POST', '/expect', ['Content-Length: 5', 'Expect: 100-continue']),
    afterContinue: 'hello',
    forwarded: ['POST /expect hello'],
  },
  {
    name: 'Expect: 100-continue, refused: answered before the body, which is never forwarded',
    send: (a) => request(a, 'PUT', '/expect', ['Content-Length: 5', 'Expect: 100-continue']),
    afterContinue: 'hello',
    refused: /^method$/,
  },
  {
    name: 'Expect: 100-continue with a body that is a request, sent at once behind a refusal',
    send: (a) =>
      request(
        a,
        'PUT',
        '/expect',
        [`Content-Length: ${smuggled(a, 'GET').length}`, 'Expect: 100-continue'],
        smuggled(a, 'GET'),
      ),
    refused: /^method$/,
  },
  // ---- pipelining
  {
    name: 'allowed requests pipelined with every framing, in order',
    send: (a) =>
      request(a, 'GET', '/p1') +
      request(a, 'POST', '/p2', ['Content-Length: 3'], 'abc') +
      request(a, 'DELETE', '/p3', ['Transfer-Encoding: chunked'], `${chunk('de')}0\r\n\r\n`) +
      request(a, 'POST', '/p4', ['Content-Length: 0']),
    forwarded: ['GET /p1 ', 'POST /p2 abc', 'DELETE /p3 de', 'POST /p4 '],
  },
  {
    name: 'requests pipelined behind a denied method',
    send: (a) =>
      request(a, 'PUT', '/denied', ['Content-Length: 0']) +
      request(a, 'GET', '/behind') +
      request(a, 'POST', '/behind', ['Content-Length: 2'], 'hi'),
    refused: /^method$/,
  },
  {
    name: 'requests pipelined behind a framing refusal',
    send: (a) =>
      request(a, 'POST', '/denied', ['Content-Length: 5', 'Connection: content-length'], 'hello') +
      request(a, 'GET', '/behind'),
    refused: /^framing$/,
  },
  {
    name: 'a request behind an allowed one is refused on its own, then the connection closes',
    send: (a) =>
      request(a, 'GET', '/first') +
      request(a, 'PUT', '/denied', ['Content-Length: 0']) +
      request(a, 'GET', '/behind'),
    forwarded: ['GET /first '],
    refused: /^method$/,
  },
  {
    name: 'a body on GET (a read-only method) is refused, not read as the next request',
    send: (a) => request(a, 'GET', '/body', [`Content-Length: ${smuggled(a).length}`], smuggled(a)),
    refused: /^method$/,
  },
  {
    name: 'an upgrade behind an allowed request',
    send: (a) =>
      request(a, 'GET', '/first') +
      request(a, 'GET', '/ws', ['Connection: Upgrade', 'Upgrade: websocket']) +
      request(a, 'GET', '/behind'),
    forwarded: ['GET /first '],
    refused: /^protocol$/,
  },
  // ---- HTTP/1.0
  {
    name: 'HTTP/1.0 keep-alive, two requests',
    send: (a) =>
      request(a, 'GET', '/old1', ['Connection: keep-alive'], '', '1.0') +
      request(a, 'POST', '/old2', ['Connection: keep-alive', 'Content-Length: 3'], 'abc', '1.0'),
    forwarded: ['GET /old1 ', 'POST /old2 abc'],
  },
  {
    name: 'HTTP/1.0 without a length: its "body" is the next request, and is checked as one',
    send: (a) => request(a, 'POST', '/old', ['Connection: keep-alive'], smuggled(a), '1.0'),
    forwarded: ['POST /old '],
    refused: /^method$/,
  },
  {
    name: 'HTTP/1.0 with Transfer-Encoding: chunked',
    send: (a) =>
      request(
        a,
        'POST',
        '/old-te',
        ['Transfer-Encoding: chunked'],
        `${chunk('abc')}0\r\n\r\n`,
        '1.0',
      ),
    refused: FRAMING,
  },
  // ---- every framing header named in Connection
  ...[
    ['content-length', 'Content-Length: 5', 'hello'],
    ['Content-Length (capitals)', 'Content-Length: 5', 'hello'],
    ['transfer-encoding', 'Transfer-Encoding: chunked', `${chunk('hello')}0\r\n\r\n`],
    ['host', 'Content-Length: 5', 'hello'],
    ['close, content-length', 'Content-Length: 5', 'hello'],
    ['keep-alive,transfer-encoding', 'Transfer-Encoding: chunked', `${chunk('hello')}0\r\n\r\n`],
  ].map(([named, framing, body]): RequestCase => ({
    name: `Connection: ${named}`,
    send: (a) =>
      request(
        a,
        'POST',
        '/conn',
        [framing ?? '', `Connection: ${(named ?? '').replace(' (capitals)', '')}`],
        body,
      ),
    refused: /^framing$/,
  })),
  {
    name: 'a framing header named in a second Connection header',
    send: (a) =>
      request(
        a,
        'POST',
        '/conn',
        ['Content-Length: 5', 'Connection: keep-alive', 'Connection: content-length'],
        'hello',
      ),
    refused: /^framing$/,
  },
  {
    name: 'Connection naming an ordinary header drops only that header',
    send: (a) =>
      request(
        a,
        'POST',
        '/conn-ok',
        ['Content-Length: 5', 'Connection: x-drop', 'X-Drop: 1'],
        'hello',
      ),
    forwarded: ['POST /conn-ok hello'],
  },
];

interface ResponseCase {
  name: string;
  /** The upstream's raw answer to GET /r1 (it closes after it with `close`). */
  answer: string;
  close?: boolean;
  /** The body the sandbox must see for /r1 when the proxy passes the response on. */
  body?: string;
  /** A well-formed response every path must pass on (the others may also be a 502). */
  passes?: boolean;
}

/** A response that a desynchronised client would read as the answer to its next request. */
const FAKE = 'HTTP/1.1 299 Smuggled\r\nContent-Length: 8\r\n\r\nsmuggled';

const RESPONSE_CASES: ResponseCase[] = [
  {
    name: 'Content-Length and chunked together (chunked wins or the proxy refuses)',
    answer: `HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(FAKE)}0\r\n\r\n`,
    body: FAKE,
  },
  {
    name: 'two conflicting Content-Lengths',
    answer: `HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: ${FAKE.length + 2}\r\n\r\nok${FAKE}`,
  },
  {
    name: 'a Content-Length with a sign',
    answer: `HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok${FAKE}`,
  },
  {
    name: 'a Content-Length list of equal values',
    answer: `HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok`,
    body: 'ok',
  },
  {
    name: 'Connection: content-length',
    answer: `HTTP/1.1 200 OK\r\nContent-Length: ${FAKE.length}\r\nConnection: content-length\r\n\r\n${FAKE}`,
    body: FAKE,
    passes: true,
  },
  {
    name: 'Connection: transfer-encoding',
    answer: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n${chunk(FAKE)}0\r\n\r\n`,
    body: FAKE,
    passes: true,
  },
  {
    name: 'Transfer-Encoding: xchunked (until close)',
    answer: `HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n${FAKE}`,
    close: true,
  },
  {
    name: 'an obs-fold continuation',
    answer: `HTTP/1.1 200 OK\r\nX-Pad: a\r\n Content-Length: 0\r\nContent-Length: ${FAKE.length}\r\n\r\n${FAKE}`,
  },
  {
    name: 'a space before the colon',
    answer: `HTTP/1.1 200 OK\r\nContent-Length : 2\r\nContent-Length: ${FAKE.length + 2}\r\n\r\nok${FAKE}`,
  },
  {
    name: 'a NUL in a header name',
    answer: `HTTP/1.1 200 OK\r\nContent\0-Length: 2\r\nContent-Length: ${FAKE.length + 2}\r\n\r\nok${FAKE}`,
  },
  {
    name: 'bare LF line ends',
    answer: `HTTP/1.1 200 OK\nContent-Length: 2\n\nok`,
    // A head without CRLF never ends for the native reader: the upstream's close ends it.
    close: true,
  },
  {
    name: 'a chunk size that overflows',
    answer: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n${FAKE}\r\n0\r\n\r\n`,
  },
  {
    name: 'chunk extensions',
    answer: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0;z\r\n\r\n`,
    body: 'ok',
    passes: true,
  },
  {
    name: 'a chunk longer than its size',
    answer: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok${FAKE}\r\n0\r\n\r\n`,
  },
  {
    name: 'an unasked 101',
    answer: `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n${FAKE}`,
  },
  {
    name: 'interim responses before the answer',
    answer: `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`,
    body: 'ok',
    passes: true,
  },
];

describe.each(PROXY_PATHS)('request smuggling, %s path', (path) => {
  let world: TestWorld;
  let upstream: StrictUpstream;
  let proxy: TestProxy;
  let target: Target;

  beforeAll(async () => {
    world = await startTestWorld();
    upstream = await startStrictUpstream(world.upstreamCa);
    proxy = await startTestProxy(
      { ...world, httpPort: upstream.httpPort, httpsPort: upstream.httpsPort },
      { domains: ['allowed.test'], methods: ['GET', 'POST', 'DELETE'] },
      { interceptTls: path === 'node' ? 'node' : 'native' },
    );
    target = {
      proxyPort: proxy.port,
      proxyCa: proxy.ca?.certificatePem ?? '',
      host: 'allowed.test',
      httpsPort: upstream.httpsPort,
      httpPort: upstream.httpPort,
    };
  });
  afterAll(async () => {
    await proxy.proxy.close();
    await upstream.close();
    await world.close();
  });
  beforeEach(() => {
    upstream.reset();
    proxy.decisions.length = 0;
  });

  /** The requests the decision log allowed, as the upstream would log them. */
  /**
   * The requests the decision log allowed, as the upstream would log them. A request allowed
   * and then cut (its body turned out malformed while it was forwarded) has a second decision
   * saying so; the upstream never had it whole.
   */
  const allowedRequests = () => {
    const allowed: string[] = [];
    for (const d of proxy.decisions.filter((e) => e.scheme !== 'connect')) {
      if (d.allowed) allowed.push(`${d.method} ${d.host}`);
      else if (/cut off/.test(d.reason)) expect(allowed.pop()).toBe(`${d.method} ${d.host}`);
    }
    return allowed;
  };
  const upstreamRequests = () =>
    upstream.requests.map((r) => `${r.method} ${(r.host ?? '').replace(/:\d+$/, '')}`);

  /** What holds for every case, whatever it sent. */
  function checkInvariants(conversation: Conversation): void {
    expect(upstream.errors).toEqual([]);
    expect(upstreamRequests()).toEqual(allowedRequests());
    expect(conversation.garbage).toBe('');
    for (const decision of proxy.decisions.filter((d) => !d.allowed)) {
      expect(decision.rule).not.toBe('');
      expect(decision.reason).not.toBe('');
    }
  }

  const cases = REQUEST_CASES.filter((c) => c.paths === undefined || c.paths.includes(path));
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const a = { ...addressing(path, target), path };
    const forwarded = c.forwarded ?? [];
    const conversation = await converse(path, target, c.send(a), {
      expected: forwarded.length + (c.refused === undefined ? 0 : 1),
      ...(c.afterContinue !== undefined ? { afterContinue: c.afterContinue } : {}),
      ...(c.clientGivesUp === true ? { quietMs: 300 } : {}),
    });
    // Let a request the upstream might still be parsing arrive.
    await new Promise((resolve) => setTimeout(resolve, 30));
    checkInvariants(conversation);
    expect(upstream.requests.map((r) => `${r.method} ${r.target} ${r.body.toString()}`)).toEqual(
      forwarded,
    );
    expect(conversation.responses.slice(0, forwarded.length).map((r) => r.body)).toEqual(
      forwarded.map((f) => `upstream saw ${f.split(' ').slice(0, 2).join(' ')}`),
    );
    if (c.refused !== undefined) {
      const refusals = proxy.decisions.filter((d) => d.scheme !== 'connect' && !d.allowed);
      expect(refusals[0]?.rule).toMatch(c.refused);
      // The refusal is answered (400 or 403) or the connection is closed; either way, closed.
      const rest = conversation.responses.slice(forwarded.length).map((r) => r.status);
      expect(rest.length).toBeLessThanOrEqual(1);
      for (const status of rest) expect([400, 403]).toContain(status);
      expect(conversation.closed).toBe(c.clientGivesUp !== true);
    } else {
      expect(conversation.responses).toHaveLength(forwarded.length);
      expect(proxy.decisions.filter((d) => !d.allowed)).toEqual([]);
    }
  });

  it.each(RESPONSE_CASES.map((c) => [c.name, c] as const))('response: %s', async (_name, c) => {
    upstream.scripted.set('/r1', {
      answer: c.answer,
      ...(c.close === true ? { close: true } : {}),
    });
    const a = { ...addressing(path, target), path };
    const conversation = await converse(
      path,
      target,
      request(a, 'GET', '/r1') + request(a, 'GET', '/r2'),
      { expected: 2 },
    );
    checkInvariants(conversation);
    // Only the sandbox's two requests went upstream, and no response is the fake one.
    expect(upstream.requests.map((r) => r.target)).toEqual(
      ['/r1', '/r2'].slice(0, upstream.requests.length),
    );
    expect(conversation.responses.map((r) => r.status)).not.toContain(299);
    const [first, second] = conversation.responses;
    if (first !== undefined) {
      expect([200, 502]).toContain(first.status);
      if (first.status === 200 && c.body !== undefined) expect(first.body).toBe(c.body);
    }
    if (second !== undefined) expect(second.body).toBe('upstream saw GET /r2');
    // A well-formed response is passed on as framed, then the next one.
    if (c.passes === true) {
      expect(conversation.responses.map((r) => r.body)).toEqual([c.body, 'upstream saw GET /r2']);
    }
  });
});
