/**
 * Threat model. How the egress proxy frames the HTTP/1.1 messages it forwards. A request comes
 * from a sandbox (hostile); a response from an allowed but untrusted server. Either side may try
 * to make the proxy and the other side disagree on where a message ends (request smuggling,
 * response splitting): the bytes after the point where the proxy thinks a message ended would
 * reach the other side as a message the proxy never parsed or checked.
 *
 * Trusted: Node's HTTP parser (llhttp, strict mode) for requests and for responses on Node's
 * client; `http1-response.ts` for responses read on the native TLS legs. Each message has been
 * parsed whole by one of them before its framing is decided here.
 *
 * Guarantees:
 * - The framing of every forwarded message is taken from what the parser parsed (its own
 *   Content-Length, or chunked), never inherited from the header bookkeeping: the received
 *   `Content-Length` and `Transfer-Encoding` headers are dropped and the proxy writes its own.
 * - Hop-by-hop removal (the fixed list and the names a `Connection` header lists) never removes
 *   `Content-Length`, `Transfer-Encoding` or `Host`: the proxy sets those itself, and a request
 *   whose `Connection` names one of them is refused (`connectionProblem`).
 * - A Content-Length is a single decimal number below 2^53, or the request is refused.
 * Not covered here: which requests may pass (egress-proxy.ts) and the response head's own
 * parsing (http1-response.ts).
 */
import type http from 'node:http';

/** Headers meaningful for one connection only (RFC 9110 7.6.1 and the proxy ones). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Headers the proxy always writes itself, from what it parsed. */
const PROXY_SET = new Set(['content-length', 'transfer-encoding', 'host']);

const DECIMAL = /^\d{1,15}$/;

/** How a message's body is delimited on the wire. */
export type MessageFraming =
  { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };

function listed(value: string | string[] | undefined): string[] {
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

/**
 * Why a message whose `Connection` header names a framing header (or Host) cannot be forwarded;
 * undefined when it names none.
 */
export function connectionProblem(headers: http.IncomingHttpHeaders): string | undefined {
  const named = listed(headers.connection).filter((name) => PROXY_SET.has(name));
  if (named.length === 0) return undefined;
  return `the Connection header names ${named.join(', ')} (a framing header cannot be hop-by-hop)`;
}

/**
 * The end-to-end headers of a parsed message: hop-by-hop ones and those `Connection` lists
 * removed, and the framing headers and Host left out (the caller sets them from the parse).
 */
export function endToEndHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const connectionListed = new Set(listed(headers.connection));
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || PROXY_SET.has(name)) continue;
    if (connectionListed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * The framing of a request Node's parser parsed: chunked when it carried Transfer-Encoding
 * (the proxy accepts only a single `chunked`), else its Content-Length, else no body. A
 * Content-Length that is not one plain decimal number is a reason to refuse.
 */
export function requestFraming(
  headers: http.IncomingHttpHeaders,
): MessageFraming | { problem: string } {
  if (headers['transfer-encoding'] !== undefined) return { kind: 'chunked' };
  const length = headers['content-length'];
  if (length === undefined) return { kind: 'none' };
  if (!DECIMAL.test(length)) return { problem: 'Content-Length is not a single decimal number' };
  return { kind: 'length', length: Number(length) };
}

/** The framing headers to send for `framing` (none for no body). */
export function framingHeaders(framing: MessageFraming): http.OutgoingHttpHeaders {
  switch (framing.kind) {
    case 'length':
      return { 'content-length': String(framing.length) };
    case 'chunked':
      return { 'transfer-encoding': 'chunked' };
    case 'none':
      return {};
  }
}

/**
 * Headers for a response Node's HTTP client parsed, to be re-sent through a ServerResponse:
 * its Content-Length when Node's parser framed the body by it (no Transfer-Encoding), so that
 * Node sends exactly the bytes it read; otherwise none, and Node re-frames the body itself
 * (chunked, or until close for an HTTP/1.0 client).
 */
export function relayedResponseHeaders(answer: http.IncomingMessage): http.OutgoingHttpHeaders {
  const out = endToEndHeaders(answer.headers);
  const length = answer.headers['content-length'];
  if (answer.headers['transfer-encoding'] === undefined && length !== undefined) {
    if (DECIMAL.test(length)) out['content-length'] = length;
  }
  return out;
}
