/**
 * Threat model. Behind a corporate proxy the egress proxy's allowed traffic leaves through that
 * proxy (the "upstream proxy"): a CONNECT tunnel for passthrough tunnels and intercepted HTTPS,
 * an absolute-form request for plain HTTP. The upstream proxy and its URL are the operator's
 * (trusted); the sandbox and every upstream server are not.
 *
 * Guarantees:
 * - The upstream proxy's credentials (user:password in its URL) become a `Proxy-Authorization:
 *   Basic` header sent to the upstream proxy only: on the CONNECT request (never inside the
 *   tunnel) or on a plain request in absolute form. They are never in an error text, a decision,
 *   a log line or `describe()`; a `Proxy-Authorization` the sandbox sent is dropped before
 *   anything is forwarded (message-framing.ts), so the sandbox cannot use or replace them.
 * - The CONNECT target is the allowed name and port checked by the policy (never an address the
 *   sandbox chose); the upstream proxy's answer head is read with a size cap and a timeout; any
 *   status but 2xx is a refusal naming the proxy (host:port only), the status and its reason.
 * - A 2xx answer followed by bytes before the client spoke is refused (a TLS server speaks
 *   second): nothing the upstream proxy sends is taken for the server's.
 * - `NO_PROXY` names go direct (the egress proxy's own checks apply as without an upstream proxy).
 * Not covered: what the upstream proxy itself resolves and reaches. Behind it, the address guard
 * vets the name as the Berth server resolves it when it can (a refused address is refused); a
 * name the server cannot resolve is passed to the upstream proxy by name and the allowlist by
 * name is the check (see docs/internet.md, "Behind a corporate proxy").
 */
import net from 'node:net';
import { BerthError } from '../errors/berth-error.js';

export interface UpstreamProxy {
  host: string;
  port: number;
  /** The `Proxy-Authorization` value (from the URL's user:password), or undefined. */
  authorization?: string;
}

/** One `NO_PROXY` entry: a name (and its subdomains), `*`, with an optional port. */
export interface NoProxyEntry {
  name: string;
  port?: number;
}

export interface UpstreamProxySettings {
  /** For CONNECT tunnels and intercepted HTTPS. */
  https?: UpstreamProxy;
  /** For plain HTTP (absolute-form requests). */
  http?: UpstreamProxy;
  noProxy: NoProxyEntry[];
}

/** The proxy's address as logs may show it: host:port, never the credentials. */
export function describeProxy(proxy: UpstreamProxy): string {
  const host = proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host;
  return `${host}:${proxy.port}${proxy.authorization !== undefined ? ' (with credentials)' : ''}`;
}

/** The upstream proxies in one line for `berth doctor` and the server's log (no credentials). */
export function describeUpstreamProxy(settings: UpstreamProxySettings | undefined): string {
  if (settings === undefined) return 'none (the egress proxy connects directly)';
  const parts: string[] = [];
  if (settings.https !== undefined)
    parts.push(`HTTPS and tunnels via ${describeProxy(settings.https)}`);
  if (settings.http !== undefined) parts.push(`plain HTTP via ${describeProxy(settings.http)}`);
  if (settings.noProxy.length > 0)
    parts.push(
      `NO_PROXY ${settings.noProxy.map((e) => (e.port === undefined ? e.name : `${e.name}:${e.port}`)).join(',')}`,
    );
  return parts.join('; ');
}

/**
 * Parses an upstream proxy URL: `http://[user:password@]host[:port]` (port 80 by default; a
 * bare `host:port` is taken as http). Other schemes (https://, socks5://) are refused: the egress
 * proxy speaks plain HTTP to its upstream proxy. The error never repeats the URL (it may hold a
 * password).
 */
export function parseUpstreamProxyUrl(value: string, variable: string): UpstreamProxy {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BerthError(
      'invalid_input',
      `${variable} is not a URL (http://[user:password@]host:port)`,
    );
  }
  if (url.protocol !== 'http:')
    throw new BerthError(
      'invalid_input',
      `${variable}: only an http:// upstream proxy is supported (got ${url.protocol}//)`,
    );
  if (url.hostname === '') throw new BerthError('invalid_input', `${variable} has no host name`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '')
    throw new BerthError('invalid_input', `${variable} must be http://[user:password@]host:port`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 80 : Number(url.port);
  const proxy: UpstreamProxy = { host, port };
  if (url.username !== '' || url.password !== '') {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    if (/[\x00-\x1f\x7f]/.test(user + password) || user.includes(':'))
      throw new BerthError(
        'invalid_input',
        `${variable} has a control character or ':' in its user name`,
      );
    // Not enumerable: a slip that serialises or spreads the proxy does not carry it along.
    Object.defineProperty(proxy, 'authorization', {
      value: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
      enumerable: false,
    });
  }
  return proxy;
}

/** `NO_PROXY`: comma- or space-separated names (a leading `.` or `*.` means the same), `*`. */
export function parseNoProxy(value: string | undefined): NoProxyEntry[] {
  const out: NoProxyEntry[] = [];
  for (const raw of (value ?? '').split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    entry = entry.replace(/^\*\./, '').replace(/^\./, '');
    let port: number | undefined;
    const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (withPort !== null) {
      entry = withPort[1] ?? entry;
      port = Number(withPort[2]);
    }
    entry = entry.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
    out.push(port === undefined ? { name: entry } : { name: entry, port });
  }
  return out;
}

/**
 * The upstream proxy settings from the server's environment: `BERTH_UPSTREAM_PROXY` (for every
 * scheme) wins over `HTTPS_PROXY`/`HTTP_PROXY` (the lower-case names too, lower case first as
 * curl reads them); `NO_PROXY`/`no_proxy`. Undefined when no proxy is set.
 */
export function upstreamProxyFromEnvironment(
  env: Readonly<Record<string, string | undefined>>,
): UpstreamProxySettings | undefined {
  const pick = (...names: string[]): [string, string] | undefined => {
    for (const name of names) {
      const value = env[name]?.trim();
      if (value !== undefined && value !== '') return [name, value];
    }
    return undefined;
  };
  const both = pick('BERTH_UPSTREAM_PROXY');
  const https = both ?? pick('https_proxy', 'HTTPS_PROXY');
  const http = both ?? pick('http_proxy', 'HTTP_PROXY');
  if (https === undefined && http === undefined) return undefined;
  const settings: UpstreamProxySettings = {
    noProxy: parseNoProxy(pick('no_proxy', 'NO_PROXY')?.[1]),
  };
  if (https !== undefined) settings.https = parseUpstreamProxyUrl(https[1], https[0]);
  if (http !== undefined) settings.http = parseUpstreamProxyUrl(http[1], http[0]);
  return settings;
}

/** Whether `host:port` is in NO_PROXY (a name matches itself and its subdomains; `*` matches all). */
export function bypassesProxy(
  noProxy: readonly NoProxyEntry[],
  host: string,
  port: number,
): boolean {
  const name = host.toLowerCase();
  return noProxy.some(
    (entry) =>
      (entry.port === undefined || entry.port === port) &&
      (entry.name === '*' || name === entry.name || name.endsWith(`.${entry.name}`)),
  );
}

/** The upstream proxy for a request, or undefined to connect directly. */
export function upstreamProxyFor(
  settings: UpstreamProxySettings | undefined,
  scheme: 'https' | 'http',
  host: string,
  port: number,
): UpstreamProxy | undefined {
  if (settings === undefined) return undefined;
  const proxy = scheme === 'https' ? settings.https : settings.http;
  if (proxy === undefined || bypassesProxy(settings.noProxy, host, port)) return undefined;
  return proxy;
}

/** The upstream proxy refused or failed a CONNECT (the message names no credentials). */
export class UpstreamProxyRefusal extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'UpstreamProxyRefusal';
  }
}

const MAX_ANSWER_HEAD = 16 * 1024;

function target(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Opens a tunnel to `host:port` through the upstream proxy: dials the proxy, sends CONNECT (with
 * Proxy-Authorization when it has credentials) and reads its answer. Resolves with the socket,
 * paused, nothing of it read beyond the answer head; rejects with an UpstreamProxyRefusal.
 */
export function connectThroughProxy(
  proxy: UpstreamProxy,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<net.Socket> {
  const name = describeProxy(proxy);
  const where = target(host, port);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port, noDelay: true });
    let head = Buffer.alloc(0);
    let settled = false;
    const fail = (message: string, status?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new UpstreamProxyRefusal(message, status));
    };
    const timer = setTimeout(
      () => fail(`upstream proxy ${name} did not answer CONNECT ${where} in time`),
      timeoutMs,
    );
    const onError = (error: NodeJS.ErrnoException) =>
      fail(`upstream proxy ${name} could not be reached (${error.code ?? 'error'})`);
    const onClose = () =>
      fail(`upstream proxy ${name} closed the connection during CONNECT ${where}`);
    socket.on('error', onError);
    socket.once('close', onClose);
    socket.once('connect', () => {
      const lines = [`CONNECT ${where} HTTP/1.1`, `Host: ${where}`];
      if (proxy.authorization !== undefined)
        lines.push(`Proxy-Authorization: ${proxy.authorization}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_ANSWER_HEAD)
          fail(`upstream proxy ${name} sent an over-long answer to CONNECT ${where}`);
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const match = /^HTTP\/1\.[01] (\d{3})(?: ([^\x00-\x1f\x7f]*))?$/.exec(statusLine);
      if (match === null) {
        fail(`upstream proxy ${name} sent a malformed answer to CONNECT ${where}`);
        return;
      }
      const status = Number(match[1]);
      const reason = (match[2] ?? '').slice(0, 100);
      if (status < 200 || status > 299) {
        const hint = status === 407 ? ' (check the credentials in its URL)' : '';
        fail(
          `upstream proxy ${name} refused CONNECT ${where}: ${status} ${reason}${hint}`.trimEnd(),
          status,
        );
        return;
      }
      if (head.length > end + 4) {
        fail(`upstream proxy ${name} sent bytes after its answer to CONNECT ${where}`);
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.off('close', onClose);
      socket.off('error', onError);
      // Whoever takes the socket adds its own handling; an error meanwhile never goes uncaught.
      socket.on('error', () => socket.destroy());
      resolve(socket);
    };
    socket.on('data', onData);
  });
}
