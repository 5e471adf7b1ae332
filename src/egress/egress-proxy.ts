/**
 * Threat model. The egress proxy is the only way out of a locked-down sandbox. Everything that
 * arrives on its listener is untrusted: it may come from code that read a hostile web page and
 * now tries to reach a host that is not allowed, to reach the host itself or the site's private
 * network through an allowed name, to smuggle a second request past the check, to use a
 * forbidden method, or to carry another protocol (SSH, WebSocket, HTTP/2) through a tunnel opened
 * for HTTPS.
 *
 * Trusted: the policy, the address guard's allowances, the CA, the upstream trust store (all
 * from the orchestrator) and the resolver's answer only as far as the guard vets it.
 *
 * Guarantees:
 * - The target is checked against the policy before any name is resolved; malformed targets
 *   (userinfo, odd ports, white space, IP literals) are refused outright.
 * - Names are resolved once per CONNECT or plain request by the proxy itself; every address is
 *   vetted by the guard and the proxy dials the vetted address literal (no second lookup, so DNS
 *   rebinding between check and dial cannot win).
 * - The machine's own addresses (all but loopback, whatever the link state, re-read as bridges
 *   come and go, and the listener's) are never dialled, even when an operator's allowance covers
 *   them: a name that resolves to the host itself does not reach the host's services.
 * - Only HTTP/1.0 and HTTP/1.1 requests pass (a request line cut short by CR or LF parses as
 *   HTTP/0.9 and is refused).
 * - Nothing is dialled before the client's first bytes in a tunnel were read and found to be a
 *   TLS ClientHello whose SNI names the CONNECT host.
 * - With method limits (interception), every request inside the tunnel, pipelined or not, is
 *   checked: Host equals the CONNECT host, the method is allowed, read-only methods carry no
 *   body, no upgrades, no nested CONNECT, no method-override headers. Upstream TLS is verified
 *   against the allowed name with the configured trust store.
 * - Plain HTTP: the absolute URL's host equals the Host header, the same request checks apply.
 * - Framing, on every path (plain, intercepted on Node's TLS, intercepted on the native legs):
 *   Node's parser reads each request whole; ambiguous framing (Content-Length with
 *   Transfer-Encoding, repeated or non-decimal Content-Length, a coding other than one
 *   `chunked`) and a `Connection` header naming Content-Length, Transfer-Encoding or Host are
 *   refused (400, rule `framing`). What goes upstream, and back to the sandbox, is framed from
 *   what was parsed (message-framing.ts), never from the received framing headers, so a body
 *   cannot become a request the proxy did not check.
 * - Requests of one connection are handled one at a time, in order; after a refusal nothing
 *   more of that connection is forwarded (requests already parsed behind it are reported,
 *   rule `connection`) and the connection closes once the refusal is sent. A request whose body
 *   turns out malformed while it is forwarded is cut: the upstream connection closes with the
 *   request incomplete, and a second decision says so.
 * - One connection has at most MAX_PIPELINED_REQUESTS requests parsed and unanswered; past
 *   that it closes. A CONNECT pipelined behind an unanswered or refused request is refused in
 *   turn. A request head must arrive whole within headersTimeoutMs, inside intercepted tunnels
 *   too (408, then closed).
 * - An upstream's answer is re-sent only with a final status from 200 to 599 and a reason
 *   phrase without control characters (else 502; a 101 was never asked for). No listener throws
 *   out of its event: a failure is a 502, a cut response or a closed connection, never an
 *   uncaught exception in the orchestrator.
 * - On the native legs an unanswered request is sent again on a new connection only when it is
 *   safe to repeat (GET, HEAD, OPTIONS without a body).
 * - Every decision is reported through `onDecision`; a refusal that can still be answered gets a
 *   403 (400 for malformed requests) whose body names the host and the reason.
 * - A request target longer than maxTargetBytes (8 KB by default) is refused (414, rule
 *   `target`). For a host with `rules`, the path is checked in its normal form and that normal
 *   form is what goes upstream (request-path.ts), on plain HTTP (absolute form) and inside
 *   intercepted tunnels alike.
 * - Credentials: on an intercepted HTTPS request to a credential's host, every value of its
 *   header the sandbox sent is dropped and the proxy sets its own, upstream only (never on plain
 *   HTTP, never in a decision, a refusal or an error text). The values live in this process only.
 * - Budgets (egress-budget.ts): past a limit, every request and tunnel is refused (rule
 *   `budget`); a transfer that passes a byte limit is cut.
 * - Behind an upstream (corporate) proxy (upstream-proxy.ts), every check above comes first; then
 *   what is allowed goes through it: CONNECT to the checked name and port for tunnels and
 *   intercepted HTTPS (once the ClientHello or the request passed), absolute form for plain
 *   HTTP. Its credentials go to it only, never to the sandbox, an upstream server or a decision.
 *   A name this server resolves is vetted as above (a refused address is refused and the
 *   upstream proxy never asked); a name it cannot resolve is passed on by name, and then the
 *   address the upstream proxy reaches is its own to vet (docs/internet.md). Passthrough tunnels
 *   through it are relayed with Node streams.
 * Not covered here: the network placement (only the proxy port reachable), which the firewall
 * and the runtime provide.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { lookup as dnsLookup } from 'node:dns/promises';
import { parseAuthority } from '../domain/internet/authority.js';
import { normaliseHostName } from '../domain/internet/host-name.js';
import { denialLine } from '../domain/internet/egress-denial.js';
import type { EgressPolicy, EgressScheme } from '../domain/internet/egress-policy.js';
import { DEFAULT_MAX_TARGET_BYTES } from '../domain/internet/request-path.js';
import type { InjectedCredential } from '../domain/internet/injected-credentials.js';
import { BerthError } from '../errors/berth-error.js';
import {
  EgressBudget,
  requestHeadBytes,
  responseHeadBytes,
  type BudgetLimits,
} from './egress-budget.js';
import { AddressGuard, type AddressGuardOptions } from './address-guard.js';
import { recentMachineAddresses } from './machine-addresses.js';
import type { CertificateAuthority } from './certificate-authority.js';
import { parseClientHello, type ClientHello } from './tls-client-hello.js';
import { MAX_TIMEOUT_MS, relayConnecting, resumeReading, takeUnread } from './tunnel-relay.js';
import {
  NativeTlsLeg,
  nativeClientContext,
  nativeServerContext,
  nativeTlsAvailable,
  type NativeTlsContext,
} from './native-tls-leg.js';
import { NativeTlsSocket } from './native-tls-socket.js';
import {
  BudgetRefusal,
  UpstreamClosed,
  UpstreamPool,
  connectUpstream,
  exchange,
  type UpstreamConnection,
} from './intercepted-exchange.js';
import {
  UpstreamProxyRefusal,
  connectThroughProxy,
  describeProxy,
  upstreamProxyFor,
  type UpstreamProxy,
  type UpstreamProxySettings,
} from './upstream-proxy.js';
import {
  connectionProblem,
  endToEndHeaders,
  framingHeaders,
  relayedResponseHeaders,
  requestFraming,
  type MessageFraming,
} from './message-framing.js';

/** Resolves a host name to IP address literals. */
export type Resolver = (host: string, signal: AbortSignal) => Promise<string[]>;

export interface EgressDecisionEvent {
  host: string;
  port: number;
  method: string;
  scheme: EgressScheme;
  allowed: boolean;
  rule: string;
  reason: string;
  /** The vetted address dialled (allowed) or the refused one. */
  address?: string;
  /** The upstream proxy the request went through (host:port, never its credentials). */
  upstreamProxy?: string;
  at: Date;
}

export type { InjectedCredential };

export interface EgressProxyOptions {
  policy: EgressPolicy;
  /** Headers set on intercepted HTTPS requests to their host, replacing what the client sent. */
  credentials?: readonly InjectedCredential[];
  /** Requests and bytes this proxy (one attempt) may move; past one, requests are refused. */
  budget?: BudgetLimits;
  /** The longest request target accepted (default 8 KB); longer ones get 414. */
  maxTargetBytes?: number;
  /** Exceptions to the address guard and extra own addresses; the listener's addresses are added. */
  guard?: AddressGuardOptions;
  /**
   * A corporate proxy that allowed traffic goes out through (upstream-proxy.ts): CONNECT for
   * tunnels and intercepted HTTPS, absolute form for plain HTTP; NO_PROXY names go direct.
   */
  upstreamProxy?: UpstreamProxySettings;
  resolver?: Resolver;
  /** Required for method-limited policies (TLS interception). */
  ca?: CertificateAuthority;
  /** Extra CA certificates (PEM) trusted for upstream servers, besides the bundled roots. */
  upstreamCa?: readonly string[];
  /** Trust Node's bundled root certificates for upstream servers (default true). */
  useBundledRoots?: boolean;
  onDecision?: (event: EgressDecisionEvent) => void;
  /**
   * Idle time after which a tunnel or connection is closed. Each of the three times is a whole
   * number of milliseconds from 1 to MAX_TIMEOUT_MS (none can be turned off: 0 would mean no
   * timeout to Node's sockets); the constructor refuses anything else.
   */
  idleTimeoutMs?: number;
  /** How long a tunnel waits for the client's ClientHello. */
  clientHelloTimeoutMs?: number;
  /** How long a connection to an upstream may take. */
  connectTimeoutMs?: number;
  /**
   * How long a request head may take to arrive whole, on plain HTTP and inside intercepted
   * tunnels alike (default 30 s; checked every 30 s or this time, whichever is shorter).
   */
  headersTimeoutMs?: number;
  /**
   * Connections the listener accepts at once (a sandbox cannot exhaust the orchestrator): a
   * whole number from 1 to MAX_CONNECTIONS.
   */
  maxConnections?: number;
  /**
   * How passthrough tunnels move bytes: `native` (default) hands both sockets to the native
   * tunnel relay when it is built, `streams` relays with Node streams (the fallback).
   */
  tunnelRelay?: 'native' | 'streams';
  /**
   * Where intercepted tunnels run TLS: `native` (default) on the addon's TLS legs when it is
   * built (off the event loop; Node's HTTP parser and the checks still see every byte), `node`
   * on Node's TLS sockets (the fallback).
   */
  interceptTls?: 'native' | 'node';
}

export interface ListenOptions {
  host: string;
  port?: number;
  signal?: AbortSignal;
}

/** The default resolver: the system resolver, every address. */
export const systemResolver: Resolver = async (host, signal) => {
  signal.throwIfAborted();
  const answers = await dnsLookup(host, { all: true, verbatim: true });
  return answers.map((a) => a.address);
};

const LEAF_CONTEXT_TTL_MS = 24 * 3600_000;
type ProxiedConnect = (
  options: tls.ConnectionOptions & { servername?: string; port?: number },
  callback: (error: Error | null, socket?: net.Socket) => void,
) => undefined;
/** Upstream connections kept for reuse (per agent). */
const AGENT_POOL = { keepAlive: true, maxSockets: 256, maxFreeSockets: 32 };
/**
 * Stream buffer of the two TLS sockets of an intercepted connection (client side and upstream).
 * Node's default (16 KB) made the response relay pause and resume the upstream after every
 * decrypted 16 KB record; 256 KB cuts the proxy's CPU per intercepted byte by about a third
 * (bench/egress-proxy.bench.js, docs/benchmarks.md). It bounds what is held per socket and
 * direction for a reader that does not keep up (the kernel's own socket buffers hold more).
 */
const INTERCEPT_STREAM_BUFFER = { highWaterMark: 256 * 1024 };
/** Bounds memory when `access: on` with method limits meets a sandbox that visits many hosts. */
const LEAF_CONTEXT_MAX = 1000;
const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];
const READ_ONLY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Requests one connection may have parsed and not yet answered (the one in its turn and those
 * pipelined behind it). Node's server parses everything a client pipelines at once; past this
 * bound the connection is closed, so a sandbox cannot fill the orchestrator's memory with
 * requests queued behind one that waits for its upstream.
 */
export const MAX_PIPELINED_REQUESTS = 16;
/** A reason phrase a response may be re-sent with (Node refuses control characters there). */
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** HTTP/0.9 (a request line cut short by CR or LF) and 2.0 request lines are refused. */
const UNSUPPORTED_VERSION = {
  status: 400,
  rule: 'protocol',
  reason: 'only HTTP/1.0 and HTTP/1.1 requests are accepted',
} as const;

interface Refusal {
  status: number;
  rule: string;
  reason: string;
  address?: string;
}

/** A request given out by Node's HTTP server, waiting for its turn or in it. */
interface PendingRequest {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  scheme: EgressScheme;
  /** Its turn began: it is being checked or forwarded. */
  started: boolean;
}

interface TunnelContext {
  host: string;
  port: number;
  /** The vetted address literal; behind an upstream proxy, the name when it did not resolve here. */
  address: string;
  /** The upstream proxy this tunnel's upstream connections go through. */
  proxy?: UpstreamProxy;
}

/** A leaf certificate's TLS contexts: Node's, and the native legs' (made when first used). */
interface LeafContexts {
  node: tls.SecureContext;
  native: () => NativeTlsContext;
}

/** Builds a value once, when first asked for. */
function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

/**
 * An event listener that never throws out of its event (an exception there would be uncaught
 * and end the orchestrator's process): a failure goes to `onError`, whose own failure is dropped.
 */
function guarded<A extends unknown[]>(
  listener: (...args: A) => void,
  onError: (error: unknown, ...args: A) => void,
): (...args: A) => void {
  return (...args: A) => {
    try {
      listener(...args);
    } catch (error) {
      try {
        onError(error, ...args);
      } catch {
        // Nothing more can be done for this connection.
      }
    }
  };
}

/** Never called: every dial uses a vetted address literal. Present so a slip cannot trigger a lookup. */
function noLookup(hostname: string, _options: unknown, callback: (error: Error) => void): void {
  callback(new Error(`egress proxy: refusing a second lookup of ${hostname}`));
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 256);
}

/** One line a model can act on: `berth egress: POST api.example.test denied: method not allowed (…)`. */
function refusalBody(r: {
  host: string;
  port: number;
  method: string;
  scheme: string;
  reason: string;
}): string {
  return `${denialLine(r)}\n`;
}

function rawResponse(status: number, body: string): string {
  const text = http.STATUS_CODES[status] ?? 'Error';
  return (
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

function countRawHeader(req: http.IncomingMessage, name: string): number {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]?.toLowerCase() === name) count++;
  }
  return count;
}

/** A checked request's framing (requestProblem has refused every request without one). */
function checkedFraming(req: http.IncomingMessage): MessageFraming {
  const framing = requestFraming(req.headers);
  if ('problem' in framing) throw new BerthError('internal', framing.problem);
  return framing;
}

/**
 * The headers a checked request goes upstream with: its end-to-end headers, the framing the
 * parser found (never inherited from the received headers) and the Host the proxy checked.
 */
function forwardedRequestHeaders(
  req: http.IncomingMessage,
  host: string,
  credentials?: ReadonlyMap<string, string>,
): http.OutgoingHttpHeaders {
  const headers = endToEndHeaders(req.headers);
  // A credential's header: whatever the sandbox sent under that name is dropped, the stored
  // value set (Node's parser gives header names in lower case; repeated ones are joined).
  for (const [name, value] of credentials ?? []) headers[name] = value;
  return { ...headers, ...framingHeaders(checkedFraming(req)), host };
}

/** The body length a checked request declares (0 when chunked: counted as it goes). */
function declaredBodyLength(req: http.IncomingMessage): number {
  const framing = checkedFraming(req);
  return framing.kind === 'length' ? framing.length : 0;
}

/** Why a credential cannot be sent as a header (never shows the value), or undefined. */
function credentialProblem(credential: InjectedCredential): string | undefined {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(credential.header))
    return 'has a header name that is not an HTTP token';
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(credential.value))
    return 'has a line break or control character in its value (check the secret)';
  if (credential.value.trim() === '') return 'has an empty value (check the secret)';
  const name = normaliseHostName(credential.host);
  if (!name.ok || name.name !== credential.host)
    return 'names a host that is not a normalised name';
  return undefined;
}

/** The most `maxConnections` may be (each connection holds a descriptor or two). */
export const MAX_CONNECTIONS = 1_000_000;

/**
 * Refuses numeric options that are not whole numbers in their range (invalid_input, naming the
 * option): NaN, a fraction or a negative time would otherwise reach Node's timers (where 0 or
 * less means no timeout at all) or the native relay (which throws only when a tunnel opens).
 */
function checkNumericOptions(options: EgressProxyOptions): void {
  const ranges: Array<[keyof EgressProxyOptions, number, number]> = [
    ['connectTimeoutMs', 1, MAX_TIMEOUT_MS],
    ['idleTimeoutMs', 1, MAX_TIMEOUT_MS],
    ['clientHelloTimeoutMs', 1, MAX_TIMEOUT_MS],
    ['headersTimeoutMs', 1, MAX_TIMEOUT_MS],
    ['maxConnections', 1, MAX_CONNECTIONS],
    ['maxTargetBytes', 1, 1024 * 1024],
  ];
  for (const [option, min, max] of ranges) {
    const value: unknown = options[option];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      const shown = typeof value === 'number' ? String(value) : typeof value;
      throw new BerthError(
        'invalid_input',
        `egress proxy option ${option} must be a whole number from ${min} to ${max}, not ${shown}`,
        { option, min, max },
      );
    }
  }
}

export class EgressProxy {
  private readonly options: EgressProxyOptions;
  private readonly resolver: Resolver;
  private readonly server: http.Server;
  private readonly inner: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly tunnels = new WeakMap<object, TunnelContext>();
  private readonly leafContexts = new Map<
    string,
    { context: Promise<LeafContexts>; createdAt: number }
  >();
  private readonly upstreamTrust: tls.SecureContext;
  private readonly nativeUpstreamTrust: () => NativeTlsContext;
  private readonly nativeUpstreams = new UpstreamPool();
  /**
   * Per client connection (plain, or an intercepted tunnel's TLS socket): the request in its
   * turn. Requests of one connection are checked and forwarded one after the other.
   */
  private readonly turns = new WeakMap<object, Promise<void>>();
  /** Connections that had a refusal: nothing more from them is forwarded; they are closing. */
  private readonly refusedConnections = new WeakSet<object>();
  /** Connections whose parser stopped (malformed request, upgrade): their refusal is queued. */
  private readonly closingConnections = new WeakSet<object>();
  /** Per connection: the last request Node's server gave out (its body may still be coming). */
  private readonly lastRequests = new WeakMap<object, PendingRequest>();
  /** Per connection: requests parsed and not yet answered (see MAX_PIPELINED_REQUESTS). */
  private readonly unanswered = new WeakMap<object, number>();
  /** Requests whose body the parser found malformed, with their refusal. */
  private readonly malformedBodies = new WeakMap<http.IncomingMessage, Refusal>();
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  /** HTTPS agents through the upstream proxies (intercepted HTTPS on Node's TLS). */
  private readonly proxiedAgents = new Map<UpstreamProxy, https.Agent>();
  private guard = new AddressGuard();
  /** Own addresses from the options and the listener; the machine's are added by `currentGuard`. */
  private listenerAddresses: string[] = [];
  private machineAddressesKey: string | undefined;
  private address: net.AddressInfo | undefined;
  private closed = false;
  /** Header name (lower case) → value, by host: set on intercepted requests to that host. */
  private readonly credentials = new Map<string, Map<string, string>>();
  private readonly budget: EgressBudget | undefined;
  private readonly maxTargetBytes: number;

  constructor(options: EgressProxyOptions) {
    checkNumericOptions(options);
    this.options = options;
    for (const credential of options.credentials ?? []) {
      const problem = credentialProblem(credential);
      if (problem !== undefined) {
        // Names the host and header, never the value.
        throw new BerthError(
          'invalid_input',
          `the credential for ${printable(credential.host)} (${printable(credential.header)}) ${problem}`,
          { host: credential.host, header: credential.header },
        );
      }
      const headers = this.credentials.get(credential.host) ?? new Map<string, string>();
      headers.set(credential.header.toLowerCase(), credential.value);
      this.credentials.set(credential.host, headers);
    }
    this.budget = options.budget !== undefined ? new EgressBudget(options.budget) : undefined;
    this.maxTargetBytes = options.maxTargetBytes ?? DEFAULT_MAX_TARGET_BYTES;
    this.resolver = options.resolver ?? systemResolver;
    const ca = [
      ...(options.useBundledRoots === false ? [] : tls.rootCertificates),
      ...(options.upstreamCa ?? []),
    ];
    this.upstreamTrust = tls.createSecureContext(ca.length > 0 ? { ca } : {});
    // Node's context without a CA list trusts its bundled roots; the native one does the same.
    this.nativeUpstreamTrust = once(() =>
      nativeClientContext(ca.length > 0 ? ca : tls.rootCertificates),
    );
    this.httpAgent = new http.Agent(AGENT_POOL);
    this.httpsAgent = new https.Agent(AGENT_POOL);

    const headersTimeout = options.headersTimeoutMs ?? 30_000;
    const serverOptions: http.ServerOptions = {
      requestTimeout: 0,
      headersTimeout,
      connectionsCheckingInterval: Math.min(30_000, headersTimeout),
      maxHeaderSize: 32 * 1024,
    };
    this.server = http.createServer(serverOptions);
    this.server.maxConnections = options.maxConnections ?? 2048;
    // No listener may throw out of its event: an exception there would be uncaught and end the
    // orchestrator's process. A failure closes the connection it is about instead.
    const closeSocket = (_error: unknown, _req: unknown, socket: net.Socket) => socket.destroy();
    const closeResponse = (
      _error: unknown,
      req: http.IncomingMessage,
      res: http.ServerResponse,
    ) => {
      res.destroy();
      req.socket.destroy();
    };
    this.server.on(
      'connection',
      guarded(
        (socket: net.Socket) => this.track(socket),
        (_error, socket) => socket.destroy(),
      ),
    );
    this.server.on(
      'connect',
      guarded((req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
        if (this.pipelinedConnect(req, socket)) return;
        this.handleConnect(req, socket, head).catch((error: unknown) => this.fail(socket, error));
      }, closeSocket),
    );
    const plain = guarded(
      (req: http.IncomingMessage, res: http.ServerResponse) =>
        this.inTurn(req, res, 'http', () => this.handlePlainRequest(req, res)),
      closeResponse,
    );
    this.server.on('request', plain);
    // `Expect: 100-continue` is checked like any request; the 100 comes from the upstream, so a
    // refused request is answered before the client sends its body.
    this.server.on('checkContinue', plain);
    this.server.on(
      'upgrade',
      guarded(
        (req: http.IncomingMessage, socket: net.Socket) => this.refuseUpgrade(req, socket, 'http'),
        closeSocket,
      ),
    );
    this.server.on(
      'clientError',
      guarded(
        (error: NodeJS.ErrnoException, socket: net.Socket) =>
          this.handleClientError(error, socket, 'http'),
        (_error, _clientError, socket) => socket.destroy(),
      ),
    );

    this.inner = http.createServer(serverOptions);
    // The inner server never listens: Node checks its connections' head timeouts only once it
    // is told it listens (the check runs on a timer that 'listening' starts).
    this.inner.emit('listening');
    const intercepted = guarded(
      (req: http.IncomingMessage, res: http.ServerResponse) =>
        this.inTurn(req, res, 'https', () => this.handleInterceptedRequest(req, res)),
      closeResponse,
    );
    this.inner.on('request', intercepted);
    this.inner.on('checkContinue', intercepted);
    this.inner.on(
      'upgrade',
      guarded(
        (req: http.IncomingMessage, socket: net.Socket) => this.refuseUpgrade(req, socket, 'https'),
        closeSocket,
      ),
    );
    this.inner.on(
      'clientError',
      guarded(
        (error: NodeJS.ErrnoException, socket: net.Socket) =>
          this.handleClientError(error, socket, 'https'),
        (_error, _clientError, socket) => socket.destroy(),
      ),
    );
    this.inner.on(
      'connect',
      guarded((req: http.IncomingMessage, socket: net.Socket) => {
        const ctx = this.tunnels.get(socket);
        this.refuseSocketInTurn(socket, {
          host: ctx?.host ?? req.url ?? '',
          port: ctx?.port ?? 0,
          method: 'CONNECT',
          scheme: 'https',
          refusal: {
            status: 403,
            rule: 'protocol',
            reason: 'CONNECT inside a tunnel is not allowed',
          },
        });
      }, closeSocket),
    );
  }

  /** Starts listening; the listener's addresses become "own addresses" the proxy never dials. */
  async listen(options: ListenOptions): Promise<net.AddressInfo> {
    options.signal?.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen(
        { host: options.host, port: options.port ?? 0, signal: options.signal },
        () => {
          this.server.off('error', onError);
          resolve();
        },
      );
    });
    const address = this.server.address();
    if (address === null || typeof address === 'string')
      throw new BerthError('internal', 'proxy did not bind a TCP port');
    this.address = address;
    const own = [...(this.options.guard?.ownAddresses ?? [])];
    if (address.address === '0.0.0.0' || address.address === '::') {
      for (const list of Object.values(os.networkInterfaces())) {
        for (const info of list ?? []) own.push(info.address);
      }
    } else {
      own.push(address.address);
    }
    this.listenerAddresses = own;
    this.machineAddressesKey = undefined;
    this.currentGuard(0);
    return address;
  }

  /**
   * The guard, with the machine's addresses (loopback aside) among the own addresses. They are
   * read again at most once a second for the whole process: other sandboxes' bridges come and
   * go. The guard is rebuilt only when they changed.
   * Loopback is refused by the guard anyway; an operator who allows it (a mirror on this host's
   * loopback, the test worlds) does so on purpose, and the listener's address stays own.
   */
  private currentGuard(maxAgeMs = 1000): AddressGuard {
    const machine = recentMachineAddresses(maxAgeMs);
    const key = machine.join(' ');
    if (key !== this.machineAddressesKey) {
      this.machineAddressesKey = key;
      this.guard = new AddressGuard({
        ...this.options.guard,
        ownAddresses: [...this.listenerAddresses, ...machine],
      });
    }
    return this.guard;
  }

  /** `http://host:port` of the listener. */
  get url(): string {
    if (this.address === undefined)
      throw new BerthError('internal', 'the egress proxy is not listening');
    const host =
      this.address.family === 'IPv6' ? `[${this.address.address}]` : this.address.address;
    return `http://${host}:${this.address.port}`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    for (const agent of this.proxiedAgents.values()) agent.destroy();
    this.nativeUpstreams.destroyAll();
    // Stops the inner server's head-timeout checks (it never listened: Node answers that).
    this.inner.close(() => undefined);
    await done;
  }

  // ---------------------------------------------------------------- reporting and refusing

  private report(event: Omit<EgressDecisionEvent, 'at'>): void {
    try {
      this.options.onDecision?.({ ...event, at: new Date() });
    } catch {
      // A failing observer must not change a decision.
    }
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    // A reset from a client or an upstream must never become an unhandled error in the orchestrator.
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.sockets.delete(socket));
    const idle = this.options.idleTimeoutMs ?? 300_000;
    socket.setTimeout(idle, () => socket.destroy());
  }

  private refuseSocket(
    socket: net.Socket,
    r: { host: string; port: number; method: string; scheme: EgressScheme; refusal: Refusal },
  ): void {
    this.report({
      host: r.host,
      port: r.port,
      method: r.method,
      scheme: r.scheme,
      allowed: false,
      rule: r.refusal.rule,
      reason: r.refusal.reason,
      ...(r.refusal.address !== undefined ? { address: r.refusal.address } : {}),
    });
    if (socket.writable) {
      socket.end(rawResponse(r.refusal.status, refusalBody({ ...r, reason: r.refusal.reason })));
      socket.setTimeout(5_000, () => socket.destroy());
    } else {
      socket.destroy();
    }
  }

  private refuseResponse(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: { host: string; port: number; scheme: EgressScheme; refusal: Refusal },
  ): void {
    this.report({
      host: r.host,
      port: r.port,
      method: req.method ?? '',
      scheme: r.scheme,
      allowed: false,
      rule: r.refusal.rule,
      reason: r.refusal.reason,
      ...(r.refusal.address !== undefined ? { address: r.refusal.address } : {}),
    });
    const body = refusalBody({ ...r, method: req.method ?? '', reason: r.refusal.reason });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.shouldKeepAlive = false;
    res.writeHead(r.refusal.status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
    // The request body (if any) is never forwarded; the connection closes after this answer,
    // and nothing pipelined behind the request is forwarded (`inTurn`).
    this.refusedConnections.add(req.socket);
    res.once('finish', () => req.socket.destroySoon());
  }

  /**
   * Runs `handle` for a request once the requests before it on the same connection are done
   * (their responses sent; Node's HTTP server answers them in that order anyway), so that a
   * refusal is decided before anything behind it is looked at. A request behind a refused one
   * is never forwarded: it is reported, and the connection, already closing, closes.
   */
  private inTurn(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    scheme: EgressScheme,
    handle: () => Promise<void> | undefined,
  ): void {
    const connection = req.socket;
    const unanswered = (this.unanswered.get(connection) ?? 0) + 1;
    this.unanswered.set(connection, unanswered);
    const answered = new Promise<void>((resolve) => {
      res.once('finish', resolve);
      res.once('close', resolve);
    });
    void answered.then(() =>
      this.unanswered.set(connection, (this.unanswered.get(connection) ?? 1) - 1),
    );
    if (unanswered > MAX_PIPELINED_REQUESTS) {
      // Reported once; what Node's parser still gives out of the same read goes unreported.
      if (!connection.destroyed) {
        this.report({
          ...this.requestTarget(req),
          method: req.method ?? '',
          scheme,
          allowed: false,
          rule: 'connection',
          reason: `more than ${MAX_PIPELINED_REQUESTS} requests pipelined (the connection closes)`,
        });
      }
      this.refusedConnections.add(connection);
      res.destroy();
      connection.destroy();
      return;
    }
    const request: PendingRequest = { req, res, scheme, started: false };
    this.lastRequests.set(connection, request);
    const turn = (this.turns.get(connection) ?? Promise.resolve()).then(async () => {
      if (this.refusedConnections.has(connection)) {
        this.refuseBehindRefusal(req, res, scheme);
        return;
      }
      if (connection.destroyed) {
        res.destroy();
        return;
      }
      const malformedBody = this.malformedBodies.get(req);
      if (malformedBody !== undefined) {
        this.refuseResponse(req, res, {
          ...this.requestTarget(req),
          scheme,
          refusal: malformedBody,
        });
        return;
      }
      request.started = true;
      try {
        await handle();
      } catch (error) {
        this.failResponse(res, error);
      }
      await answered;
    });
    this.turns.set(
      connection,
      turn.catch(() => undefined),
    );
  }

  /**
   * A CONNECT behind requests of the same connection that are not answered yet (or behind a
   * refusal) is refused in turn, never handled before them: true when it was.
   */
  private pipelinedConnect(req: http.IncomingMessage, socket: net.Socket): boolean {
    const behind =
      (this.unanswered.get(socket) ?? 0) > 0 ||
      this.refusedConnections.has(socket) ||
      this.closingConnections.has(socket);
    if (!behind) return false;
    this.refuseSocketInTurn(socket, {
      host: printable(req.url ?? ''),
      port: 0,
      method: 'CONNECT',
      scheme: 'connect',
      refusal: {
        status: 400,
        rule: 'connection',
        reason: 'CONNECT pipelined behind another request (the connection closes)',
      },
    });
    return true;
  }

  /** The host and port a request is about, for the log (the tunnel's, or the URL's). */
  private requestTarget(req: http.IncomingMessage): { host: string; port: number } {
    const ctx = this.tunnels.get(req.socket);
    if (ctx !== undefined) return { host: ctx.host, port: ctx.port };
    const authority = hostOfAbsoluteUrl(req.url ?? '') ?? '';
    const parsed = parseAuthority(authority, { defaultPort: 80 });
    return parsed.ok
      ? { host: parsed.host, port: parsed.port }
      : { host: printable(authority), port: 0 };
  }

  private refuseBehindRefusal(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    scheme: EgressScheme,
  ): void {
    this.report({
      ...this.requestTarget(req),
      method: req.method ?? '',
      scheme,
      allowed: false,
      rule: 'connection',
      reason: 'pipelined behind a refused request (the connection closes)',
    });
    // Not destroyed at once: the refusal before this request may not be sent yet (a native TLS
    // leg sends on its own thread, after the response's 'finish'), and destroying the socket
    // would drop it. This request gets no answer; the connection ends once everything written
    // before was sent (its 'close' ends this response too), and is destroyed if that takes long.
    const socket = req.socket;
    socket.destroySoon();
    socket.setTimeout(5_000, () => socket.destroy());
  }

  /** A refusal written on the socket itself, after the responses to the requests before it. */
  private refuseSocketInTurn(
    socket: net.Socket,
    r: { host: string; port: number; method: string; scheme: EgressScheme; refusal: Refusal },
  ): void {
    if (this.closingConnections.has(socket)) return;
    this.closingConnections.add(socket);
    const previous = this.turns.get(socket) ?? Promise.resolve();
    const turn = previous.then(() => {
      this.refusedConnections.add(socket);
      this.refuseSocket(socket, r);
    });
    this.turns.set(
      socket,
      turn.catch(() => undefined),
    );
  }

  private handleClientError(
    error: NodeJS.ErrnoException,
    socket: net.Socket,
    scheme: EgressScheme,
  ): void {
    const ctx = this.tunnels.get(socket);
    const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const reason = timedOut
      ? 'the request head did not arrive whole in time'
      : `malformed HTTP request (${error.code ?? error.message})`;
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const last = this.lastRequests.get(socket);
    if (last !== undefined && !last.req.complete && !this.malformedBodies.has(last.req)) {
      // The parser failed inside the body of the last request it gave out.
      this.closingConnections.add(socket);
      this.refuseMalformedBody(last, `malformed request body (${error.code ?? error.message})`);
      return;
    }
    this.refuseSocketInTurn(socket, {
      host: ctx?.host ?? '',
      port: ctx?.port ?? 0,
      method: '',
      scheme,
      refusal: { status: timedOut ? 408 : 400, rule: timedOut ? 'timeout' : 'protocol', reason },
    });
  }

  /**
   * A request whose body turned out malformed. Before its turn it is simply refused when its
   * turn comes. When it was already allowed and is being forwarded, it is cut: its body stops
   * (the upstream connection is closed before the request is complete, so the upstream never
   * has it whole), a second decision says so, and the sandbox gets a 400 when its response had
   * not begun, or a closed connection.
   */
  private refuseMalformedBody(pending: PendingRequest, reason: string): void {
    const refusal: Refusal = { status: 400, rule: 'framing', reason };
    this.malformedBodies.set(pending.req, refusal);
    if (!pending.started) return;
    const { req, res, scheme } = pending;
    this.refuseResponse(req, res, {
      ...this.requestTarget(req),
      scheme,
      refusal: {
        ...refusal,
        reason: `${reason}; the request was cut off before the upstream had it whole`,
      },
    });
    req.destroy(new Error(reason));
  }

  private refuseUpgrade(req: http.IncomingMessage, socket: net.Socket, scheme: EgressScheme): void {
    const ctx = this.tunnels.get(socket);
    this.refuseSocketInTurn(socket, {
      host: ctx?.host ?? hostOfAbsoluteUrl(req.url ?? '') ?? '',
      port: ctx?.port ?? 0,
      method: req.method ?? '',
      scheme,
      refusal: {
        status: 403,
        rule: 'protocol',
        reason: 'protocol upgrades (WebSocket, h2c) are not allowed',
      },
    });
  }

  private fail(socket: net.Socket, error: unknown): void {
    if (!socket.destroyed) socket.destroy(error instanceof Error ? error : undefined);
  }

  private failResponse(res: http.ServerResponse, error: unknown): void {
    // The connection closes after this answer: nothing queued behind it is forwarded.
    this.refusedConnections.add(res.req.socket);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `Berth egress proxy error: ${printable(error instanceof Error ? error.message : String(error))}\n`;
    res.writeHead(502, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  }

  // ---------------------------------------------------------------- resolution

  /**
   * Resolves once and returns the first address the guard accepts, or a refusal. Behind an
   * upstream proxy (`proxied`) a name this server cannot resolve is passed on by name (the
   * upstream proxy resolves it; the allowlist by name is the check), while a name that resolves
   * is vetted as without one.
   */
  private async vettedAddress(
    host: string,
    signal: AbortSignal,
    proxied = false,
  ): Promise<{ address: string; resolved?: false } | { refusal: Refusal }> {
    let addresses: string[];
    try {
      addresses = await this.resolver(host, signal);
    } catch (error) {
      if (proxied && !signal.aborted) return { address: host, resolved: false };
      const code =
        (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : 'error');
      return {
        refusal: { status: 502, rule: 'dns', reason: `${host} could not be resolved (${code})` },
      };
    }
    if (addresses.length === 0) {
      if (proxied) return { address: host, resolved: false };
      return { refusal: { status: 502, rule: 'dns', reason: `${host} has no address` } };
    }
    let firstRefusal: Refusal | undefined;
    const guard = this.currentGuard();
    for (const address of addresses) {
      const verdict = guard.vet(address, host);
      if (verdict.allowed) return { address: verdict.address };
      firstRefusal ??= {
        status: 403,
        rule: `address:${verdict.rule}`,
        reason: `${host} resolves to ${printable(address)}, a refused ${verdict.reason}`,
        address,
      };
    }
    return {
      refusal: firstRefusal ?? { status: 403, rule: 'address', reason: 'no usable address' },
    };
  }

  // ---------------------------------------------------------------- CONNECT

  private async handleConnect(
    req: http.IncomingMessage,
    socket: net.Socket,
    head: Buffer,
  ): Promise<void> {
    const target = req.url ?? '';
    if (req.httpVersionMajor !== 1) {
      this.refuseSocket(socket, {
        host: target,
        port: 0,
        method: 'CONNECT',
        scheme: 'connect',
        refusal: UNSUPPORTED_VERSION,
      });
      return;
    }
    const authority = parseAuthority(target);
    if (!authority.ok) {
      this.refuseSocket(socket, {
        host: target,
        port: 0,
        method: 'CONNECT',
        scheme: 'connect',
        refusal: { status: 403, rule: 'target', reason: authority.reason },
      });
      return;
    }
    const { host, port } = authority;
    const refuse = (refusal: Refusal) =>
      this.refuseSocket(socket, { host, port, method: 'CONNECT', scheme: 'connect', refusal });
    const decision = this.options.policy.decide({ host, port, scheme: 'connect' });
    if (!decision.allowed) {
      refuse({ status: 403, rule: decision.rule, reason: decision.reason });
      return;
    }
    const exhausted = this.budget?.exhausted();
    if (exhausted !== undefined) {
      refuse({ status: 403, rule: 'budget', reason: exhausted });
      return;
    }
    const intercept = decision.tunnel === 'intercept';
    if (intercept && this.options.ca === undefined) {
      refuse({
        status: 403,
        rule: 'config',
        reason: 'methods are limited but the proxy has no CA to check them',
      });
      return;
    }
    const abort = new AbortController();
    socket.once('close', () => abort.abort());
    const proxy = upstreamProxyFor(this.options.upstreamProxy, 'https', host, port);
    const vetted = await this.vettedAddress(host, abort.signal, proxy !== undefined);
    if ('refusal' in vetted) {
      refuse(vetted.refusal);
      return;
    }
    if (socket.destroyed) return;
    // A plain tunnel counts as one request; an intercepted one counts its requests.
    const budgetRefusal = intercept ? undefined : this.budget?.admit(0);
    if (budgetRefusal !== undefined) {
      refuse({ status: 403, rule: 'budget', reason: budgetRefusal });
      return;
    }
    this.report({
      host,
      port,
      method: 'CONNECT',
      scheme: 'connect',
      allowed: true,
      rule: decision.rule,
      reason: decision.reason,
      ...(vetted.resolved === false ? {} : { address: vetted.address }),
      ...(proxy !== undefined ? { upstreamProxy: describeProxy(proxy) } : {}),
    });
    socket.write('HTTP/1.1 200 Connection established\r\n\r\n');

    const refuseTunnel = (reason: string) => {
      this.report({
        host,
        port,
        method: 'CONNECT',
        scheme: 'connect',
        allowed: false,
        rule: 'tunnel',
        reason,
      });
      // The 200 was sent; the client believes it is in a tunnel, so the only answer is to close.
      socket.destroy();
    };
    const ctx: TunnelContext = {
      host,
      port,
      address: vetted.address,
      ...(proxy !== undefined ? { proxy } : {}),
    };
    if (intercept) {
      // TLS is terminated here (on the native legs, or with Node's TLS on the socket's handle);
      // SNI is checked before the proxy's certificate goes out, ALPN in the handshake, and
      // nothing is dialled before a request passed its checks.
      await this.intercept(socket, head, ctx, refuseTunnel);
      return;
    }
    const first = await this.readClientHello(socket, head);
    if ('invalid' in first) {
      refuseTunnel(first.invalid);
      return;
    }
    const sni = first.hello.serverName;
    const sniName = sni === undefined ? undefined : normaliseHostName(sni);
    if (sniName === undefined || !sniName.ok || sniName.name !== host) {
      refuseTunnel(
        sni === undefined
          ? 'TLS ClientHello without SNI'
          : `TLS SNI "${printable(sni)}" differs from the CONNECT host`,
      );
      return;
    }
    this.passthrough(socket, first.buffered, ctx);
  }

  /** Reads until a complete ClientHello, without consuming more than the client sent. */
  private readClientHello(
    socket: net.Socket,
    head: Buffer,
  ): Promise<{ hello: ClientHello; buffered: Buffer } | { invalid: string }> {
    return new Promise((resolve) => {
      let buffered = head;
      let settled = false;
      const finish = (result: { hello: ClientHello; buffered: Buffer } | { invalid: string }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
        socket.pause();
        resolve(result);
      };
      const check = () => {
        const parsed = parseClientHello(buffered);
        if (parsed.status === 'complete') finish({ hello: parsed.hello, buffered });
        else if (parsed.status === 'invalid') finish({ invalid: parsed.reason });
      };
      // The parser reads hostile bytes: whatever it throws refuses the tunnel, never the process.
      const onData = guarded(
        (chunk: Buffer) => {
          buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
          check();
        },
        () => finish({ invalid: 'the ClientHello could not be read' }),
      );
      const onClose = () =>
        finish({ invalid: 'the client closed the tunnel before sending a ClientHello' });
      const timer = setTimeout(
        () => finish({ invalid: 'no TLS ClientHello received in time' }),
        this.options.clientHelloTimeoutMs ?? 10_000,
      );
      socket.on('data', onData);
      socket.once('close', onClose);
      if (buffered.length > 0) {
        try {
          check();
        } catch {
          finish({ invalid: 'the ClientHello could not be read' });
        }
      }
      if (!settled) socket.resume();
    });
  }

  /** A tunnel to `host:port` through the upstream proxy, tracked and timed like a direct dial. */
  private async dialThroughProxy(
    proxy: UpstreamProxy,
    host: string,
    port: number,
  ): Promise<net.Socket> {
    const upstream = await connectThroughProxy(
      proxy,
      host,
      port,
      this.options.connectTimeoutMs ?? 15_000,
    );
    this.track(upstream);
    upstream.setTimeout(this.options.idleTimeoutMs ?? 300_000);
    return upstream;
  }

  /**
   * An HTTPS agent (one per upstream proxy) whose connections are TLS over a CONNECT tunnel
   * through that proxy, to the name the request's `servername` gives.
   */
  private proxiedHttpsAgent(proxy: UpstreamProxy): https.Agent {
    let agent = this.proxiedAgents.get(proxy);
    if (agent !== undefined) return agent;
    const timeoutMs = this.options.connectTimeoutMs ?? 15_000;
    const track = (socket: net.Socket) => this.track(socket);
    const created = new https.Agent(AGENT_POOL);
    // Node's agents call createConnection(options, callback) and take a socket given later.
    (created as unknown as { createConnection: ProxiedConnect }).createConnection = (
      options,
      callback,
    ) => {
      const host = options.servername ?? '';
      connectThroughProxy(proxy, host, options.port ?? 443, timeoutMs).then(
        (raw) => {
          track(raw);
          // The TLS leg runs over the tunnel: no address or lookup of its own.
          const rest: tls.ConnectionOptions = { ...options };
          delete rest.host;
          delete rest.lookup;
          callback(null, tls.connect({ ...rest, socket: raw, servername: host }));
        },
        (error: unknown) => callback(error as Error),
      );
      return undefined;
    };
    agent = created;
    this.proxiedAgents.set(proxy, agent);
    return agent;
  }

  private dial(address: string, port: number): net.Socket {
    const upstream = net.connect({
      host: address,
      port,
      noDelay: true,
      lookup: noLookup as unknown as net.LookupFunction,
    });
    this.track(upstream);
    upstream.setTimeout(this.options.connectTimeoutMs ?? 15_000, () => upstream.destroy());
    upstream.once('connect', () => upstream.setTimeout(this.options.idleTimeoutMs ?? 300_000));
    return upstream;
  }

  private passthrough(socket: net.Socket, buffered: Buffer, ctx: TunnelContext): void {
    const { address, port } = ctx;
    // A tunnel relays handshakes of small records: no Nagle delay on either side.
    socket.setNoDelay(true);
    if (ctx.proxy !== undefined) {
      void this.proxiedPassthrough(socket, buffered, ctx, ctx.proxy);
      return;
    }
    // With a byte budget the tunnel is relayed here, where its bytes can be counted.
    const counted = this.budget?.limitsBytes === true;
    if (this.options.tunnelRelay !== 'streams' && !counted) {
      // The native relay connects to the vetted address itself and sends the ClientHello (and
      // whatever the client sent after it) first: no turn of the event loop in between.
      const first = Buffer.concat([buffered, ...takeUnread(socket)]);
      const relayed = relayConnecting(socket, { address, port }, first, {
        idleMs: this.options.idleTimeoutMs ?? 300_000,
        connectMs: this.options.connectTimeoutMs ?? 15_000,
      });
      if (relayed) return;
      resumeReading(socket);
      buffered = first;
    }
    const upstream = this.dial(address, port);
    const abort = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.once('error', abort);
    upstream.once('error', abort);
    // A client that is gone cannot receive anything more.
    socket.once('close', () => upstream.destroy());
    if (counted) this.countTunnel(socket, upstream, buffered.length, ctx);
    upstream.write(buffered);
    this.streamRelay(socket, upstream);
  }

  /**
   * A passthrough tunnel through the upstream proxy: the CONNECT to it is sent once the
   * ClientHello passed (as a direct dial would be), then the two sockets are relayed with Node
   * streams (the native relay dials addresses itself). A refusal of the upstream proxy is
   * reported (rule `upstream-proxy`) and closes the tunnel (its 200 was sent).
   */
  private async proxiedPassthrough(
    socket: net.Socket,
    buffered: Buffer,
    ctx: TunnelContext,
    proxy: UpstreamProxy,
  ): Promise<void> {
    let upstream: net.Socket;
    try {
      upstream = await connectThroughProxy(
        proxy,
        ctx.host,
        ctx.port,
        this.options.connectTimeoutMs ?? 15_000,
      );
    } catch (error) {
      this.reportProxyFailure(
        error,
        { host: ctx.host, port: ctx.port, scheme: 'connect' },
        'CONNECT',
      );
      socket.destroy();
      return;
    }
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    this.track(upstream);
    upstream.setNoDelay(true);
    upstream.setTimeout(this.options.idleTimeoutMs ?? 300_000, () => upstream.destroy());
    const abort = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.once('error', abort);
    upstream.once('error', abort);
    socket.once('close', () => upstream.destroy());
    if (this.budget?.limitsBytes === true) this.countTunnel(socket, upstream, buffered.length, ctx);
    upstream.write(buffered);
    upstream.resume();
    this.streamRelay(socket, upstream);
  }

  /** Reports an upstream proxy's refusal as a denial (its text names no credentials). */
  private reportProxyFailure(
    error: unknown,
    r: { host: string; port: number; scheme: EgressScheme },
    method: string,
  ): void {
    if (!(error instanceof UpstreamProxyRefusal)) return;
    // Named fields only: a target may carry the upstream proxy (and its credentials).
    this.report({
      host: r.host,
      port: r.port,
      scheme: r.scheme,
      method,
      allowed: false,
      rule: 'upstream-proxy',
      reason: error.message,
    });
  }

  /** Counts a plain tunnel's bytes against the budget; cuts it when it passes a limit. */
  private countTunnel(
    socket: net.Socket,
    upstream: net.Socket,
    first: number,
    ctx: TunnelContext,
  ): void {
    const budget = this.budget;
    if (budget === undefined) return;
    const cut = (reason: string | undefined) => {
      if (reason === undefined || socket.destroyed) return;
      this.report({
        host: ctx.host,
        port: ctx.port,
        method: 'CONNECT',
        scheme: 'connect',
        allowed: false,
        rule: 'budget',
        reason: `${reason}; the tunnel was cut`,
      });
      socket.destroy();
      upstream.destroy();
    };
    cut(budget.spendOut(first));
    socket.on('data', (chunk: Buffer) => cut(budget.spendOut(chunk.length)));
    upstream.on('data', (chunk: Buffer) => cut(budget.spendIn(chunk.length)));
  }

  /**
   * Relays a tunnel with Node streams (when the native relay is off or cannot take it); the
   * error and client-close handling is the caller's.
   */
  private streamRelay(socket: net.Socket, upstream: net.Socket): void {
    socket.pipe(upstream);
    upstream.pipe(socket);
    // When the upstream is done, `pipe` has ended the client side: let it flush what is still
    // queued for a slow client (destroying it here would cut the end of a download), and only
    // then close, or after a grace period if the client never reads it.
    upstream.once('close', () => {
      if (socket.destroyed) return;
      socket.end();
      setTimeout(() => socket.destroy(), 60_000).unref();
    });
    socket.resume();
  }

  private leafContext(host: string): Promise<LeafContexts> {
    const cached = this.leafContexts.get(host);
    // Leaf certificates are renewed by the CA a day before they expire; a context is kept a day.
    if (cached !== undefined && Date.now() - cached.createdAt < LEAF_CONTEXT_TTL_MS) {
      return cached.context;
    }
    const ca = this.options.ca;
    if (ca === undefined) return Promise.reject(new BerthError('internal', 'no CA'));
    this.leafContexts.delete(host);
    if (this.leafContexts.size >= LEAF_CONTEXT_MAX) {
      const oldest = this.leafContexts.keys().next();
      if (oldest.done !== true) this.leafContexts.delete(oldest.value);
    }
    const context = ca.leafFor(host).then((leaf) => ({
      node: tls.createSecureContext({ key: leaf.privateKeyPem, cert: leaf.certificatePem }),
      native: once(() => nativeServerContext(leaf.certificatePem, leaf.privateKeyPem)),
    }));
    const entry = { context, createdAt: Date.now() };
    this.leafContexts.set(host, entry);
    context.catch(() => {
      if (this.leafContexts.get(host) === entry) this.leafContexts.delete(host);
    });
    return context;
  }

  /** Whether intercepted tunnels run TLS on the native legs. */
  private nativeIntercept(): boolean {
    return this.options.interceptTls !== 'node' && nativeTlsAvailable();
  }

  private async intercept(
    socket: net.Socket,
    head: Buffer,
    ctx: TunnelContext,
    refuseTunnel: (reason: string) => void,
  ): Promise<void> {
    const contexts = await this.leafContext(ctx.host);
    if (socket.destroyed) return;
    let refused: string | undefined;
    const refuse = (reason: string) => {
      refused ??= reason;
    };
    const sniProblem = (servername: string): string | undefined => {
      const name = normaliseHostName(servername);
      return name.ok && name.name === ctx.host
        ? undefined
        : `TLS SNI "${printable(servername)}" differs from the CONNECT host`;
    };
    let first = head;
    if (this.nativeIntercept()) {
      // Node's TLS server refuses a wrong SNI in its SNI callback, before its certificate is
      // sent; for the native legs the ClientHello is checked here first, as for a passthrough.
      const hello = await this.readClientHello(socket, head);
      const problem =
        'invalid' in hello
          ? hello.invalid
          : hello.hello.serverName === undefined
            ? 'TLS ClientHello without SNI'
            : sniProblem(hello.hello.serverName);
      if (problem !== undefined) {
        refuseTunnel(problem);
        return;
      }
      if ('hello' in hello) first = hello.buffered;
    }
    const leg = this.nativeIntercept()
      ? NativeTlsLeg.start(socket, contexts.native(), undefined, first)
      : undefined;
    const tlsSocket =
      leg !== undefined
        ? new NativeTlsSocket(leg)
        : this.nodeTlsServer(socket, first, contexts.node, sniProblem, refuse);
    this.tunnels.set(tlsSocket, ctx);
    // The TLS socket now owns the connection: the idle timeout moves to it (the raw socket sees
    // no reads or writes of its own any more and would time out on a long transfer).
    socket.setTimeout(0);
    tlsSocket.setTimeout(this.options.idleTimeoutMs ?? 300_000, () => tlsSocket.destroy());
    const timer = setTimeout(() => {
      refuse('no TLS handshake in time');
      tlsSocket.destroy();
    }, this.options.clientHelloTimeoutMs ?? 10_000);
    tlsSocket.once('close', () => {
      clearTimeout(timer);
      socket.destroy();
    });
    socket.once('close', () => tlsSocket.destroy());
    tlsSocket.on('error', (error: Error) => {
      if (!established) refuse(handshakeFailure(error));
      tlsSocket.destroy();
    });
    let established = false;
    tlsSocket.once(
      'secure',
      guarded(
        () => {
          clearTimeout(timer);
          const { servername, alpnProtocol } = tlsSocket as { servername?: string | false } & {
            alpnProtocol?: string | false;
          };
          if (typeof servername !== 'string' || servername === '')
            refuse('TLS ClientHello without SNI');
          else {
            const problem = sniProblem(servername);
            if (problem !== undefined) refuse(problem);
          }
          if (alpnProtocol !== undefined && alpnProtocol !== false && alpnProtocol !== 'http/1.1')
            refuse('ALPN other than http/1.1');
          if (refused !== undefined) {
            tlsSocket.destroy();
            return;
          }
          established = true;
          this.inner.emit('connection', tlsSocket);
        },
        () => tlsSocket.destroy(),
      ),
    );
    tlsSocket.once('close', () => {
      if (!established)
        refuseTunnel(refused ?? 'the client closed the tunnel before a TLS handshake');
    });
  }

  /** Node's TLS server on the sandbox's socket (when native TLS is off or cannot take it). */
  private nodeTlsServer(
    socket: net.Socket,
    head: Buffer,
    secureContext: tls.SecureContext,
    sniProblem: (servername: string) => string | undefined,
    refuse: (reason: string) => void,
  ): tls.TLSSocket {
    // Only when the client sent bytes together with its CONNECT does the TLS server need a
    // replaying stream; otherwise it reads from the socket's handle directly.
    const stream = head.length > 0 ? replayed(socket, head) : socket;
    return new tls.TLSSocket(stream, {
      isServer: true,
      secureContext,
      ...INTERCEPT_STREAM_BUFFER,
      ALPNProtocols: ['http/1.1'],
      SNICallback: (
        servername: string,
        callback: (error: Error | null, context?: tls.SecureContext) => void,
      ) => {
        const problem = sniProblem(servername);
        if (problem !== undefined) {
          refuse(problem);
          callback(new Error('SNI differs from the CONNECT host'));
          return;
        }
        callback(null, secureContext);
      },
    });
  }

  // ---------------------------------------------------------------- requests

  /** Checks shared by plain and intercepted requests; undefined when the request may pass. */
  private requestProblem(req: http.IncomingMessage, host: string): Refusal | undefined {
    const method = req.method ?? '';
    const headers = req.headers;
    if (req.httpVersionMajor !== 1) return UNSUPPORTED_VERSION;
    if (headers.upgrade !== undefined || headers['http2-settings'] !== undefined) {
      return {
        status: 403,
        rule: 'protocol',
        reason: 'protocol upgrades (WebSocket, h2c) are not allowed',
      };
    }
    if (countRawHeader(req, 'content-length') > 1) {
      return {
        status: 400,
        rule: 'framing',
        reason: 'repeated Content-Length (request smuggling)',
      };
    }
    const named = connectionProblem(headers);
    if (named !== undefined) return { status: 400, rule: 'framing', reason: named };
    const te = headers['transfer-encoding'];
    if (te !== undefined && req.httpVersionMinor === 0) {
      // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
      return { status: 400, rule: 'framing', reason: 'Transfer-Encoding in an HTTP/1.0 request' };
    }
    if (te !== undefined) {
      if (headers['content-length'] !== undefined) {
        return {
          status: 400,
          rule: 'framing',
          reason: 'Content-Length with Transfer-Encoding (request smuggling)',
        };
      }
      if (countRawHeader(req, 'transfer-encoding') > 1 || te.trim().toLowerCase() !== 'chunked') {
        return {
          status: 400,
          rule: 'framing',
          reason: 'only "Transfer-Encoding: chunked" is accepted',
        };
      }
    }
    const framing = requestFraming(headers);
    if ('problem' in framing) return { status: 400, rule: 'framing', reason: framing.problem };
    if (countRawHeader(req, 'host') !== 1) {
      return { status: 400, rule: 'host', reason: 'exactly one Host header is required' };
    }
    if (this.options.policy.limitsMethods(host)) {
      const override = METHOD_OVERRIDE_HEADERS.find((h) => headers[h] !== undefined);
      if (override !== undefined) {
        return {
          status: 403,
          rule: 'method',
          reason: `method-override header ${override} is not allowed`,
        };
      }
      const hasBody =
        framing.kind === 'chunked' || (framing.kind === 'length' && framing.length > 0);
      if (READ_ONLY_METHODS.has(method) && hasBody) {
        return { status: 403, rule: 'method', reason: `a body on ${method} is not allowed` };
      }
    }
    return undefined;
  }

  private async handlePlainRequest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> {
    const url = req.url ?? '';
    const refuse = (host: string, port: number, refusal: Refusal) =>
      this.refuseResponse(req, res, { host, port, scheme: 'http', refusal });
    if (url.length > this.maxTargetBytes) {
      refuse(hostOfAbsoluteUrl(url.slice(0, 1024)) ?? '', 0, this.targetTooLong());
      return;
    }
    const match = /^http:\/\/([^/?#]*)([^#]*)$/i.exec(url);
    if (match === null) {
      const reason = /^https:/i.test(url)
        ? 'HTTPS goes through CONNECT, not as a plain request'
        : 'a proxy request needs an absolute http:// URL';
      refuse(hostOfAbsoluteUrl(url) ?? '', 0, { status: 400, rule: 'target', reason });
      return;
    }
    const authority = parseAuthority(match[1] ?? '', { defaultPort: 80 });
    if (!authority.ok) {
      refuse(match[1] ?? '', 0, { status: 403, rule: 'target', reason: authority.reason });
      return;
    }
    const { host, port } = authority;
    const hostHeader = req.headers.host;
    const headerAuthority =
      hostHeader === undefined ? undefined : parseAuthority(hostHeader, { defaultPort: 80 });
    if (
      headerAuthority === undefined ||
      !headerAuthority.ok ||
      headerAuthority.host !== host ||
      headerAuthority.port !== port
    ) {
      refuse(host, port, {
        status: 403,
        rule: 'host',
        reason: 'the Host header differs from the URL host',
      });
      return;
    }
    const target =
      (match[2] ?? '') === ''
        ? '/'
        : (match[2] ?? '/').startsWith('/')
          ? (match[2] ?? '/')
          : `/${match[2] ?? ''}`;
    const decision = this.options.policy.decide({
      host,
      port,
      method: req.method ?? '',
      scheme: 'http',
      target,
    });
    if (!decision.allowed) {
      refuse(host, port, { status: 403, rule: decision.rule, reason: decision.reason });
      return;
    }
    const problem = this.requestProblem(req, host);
    if (problem !== undefined) {
      refuse(host, port, problem);
      return;
    }
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const proxy = upstreamProxyFor(this.options.upstreamProxy, 'http', host, port);
    const vetted = await this.vettedAddress(host, abort.signal, proxy !== undefined);
    if ('refusal' in vetted) {
      refuse(host, port, vetted.refusal);
      return;
    }
    // A client that left while the name was resolved has nobody to answer: nothing is sent.
    if (res.destroyed || req.socket.destroyed) return;
    const budgetRefusal = this.budget?.admit(requestHeadBytes(req), declaredBodyLength(req));
    if (budgetRefusal !== undefined) {
      refuse(host, port, { status: 403, rule: 'budget', reason: budgetRefusal });
      return;
    }
    this.report({
      host,
      port,
      method: req.method ?? '',
      scheme: 'http',
      allowed: true,
      rule: decision.rule,
      reason: decision.reason,
      ...(vetted.resolved === false ? {} : { address: vetted.address }),
      ...(proxy !== undefined ? { upstreamProxy: describeProxy(proxy) } : {}),
    });
    const path = decision.forward ?? target;
    const hostPort = port === 80 ? host : `${host}:${port}`;
    const headers = forwardedRequestHeaders(req, hostPort);
    if (proxy !== undefined) {
      // Plain HTTP goes to the upstream proxy in absolute form (what every HTTP proxy accepts;
      // many refuse CONNECT to port 80). Its credentials go on this hop only.
      const upstream = http.request({
        host: proxy.host,
        port: proxy.port,
        method: req.method ?? 'GET',
        path: `http://${hostPort}${path}`,
        headers:
          proxy.authorization !== undefined
            ? { ...headers, 'proxy-authorization': proxy.authorization }
            : headers,
        setHost: false,
        agent: this.httpAgent,
        timeout: this.options.connectTimeoutMs ?? 15_000,
      });
      this.relay(req, res, upstream, { host, port, scheme: 'http', proxy });
      return;
    }
    const upstream = http.request({
      host: vetted.address,
      port,
      method: req.method ?? 'GET',
      path,
      headers,
      setHost: false,
      agent: this.httpAgent,
      lookup: noLookup as unknown as net.LookupFunction,
      timeout: this.options.connectTimeoutMs ?? 15_000,
    });
    this.relay(req, res, upstream, { host, port, scheme: 'http' });
  }

  private targetTooLong(): Refusal {
    return {
      status: 414,
      rule: 'target',
      reason: `the request target is longer than ${this.maxTargetBytes} bytes`,
    };
  }

  /** Checks and forwards one request of an intercepted tunnel (see `inTurn` for the order). */
  private handleInterceptedRequest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> | undefined {
    const ctx = this.tunnels.get(req.socket);
    if (ctx === undefined) throw new BerthError('internal', 'intercepted request without a tunnel');
    const { host, port } = ctx;
    const refuse = (refusal: Refusal) =>
      this.refuseResponse(req, res, { host, port, scheme: 'https', refusal });
    const url = req.url ?? '';
    if (url.length > this.maxTargetBytes) {
      refuse(this.targetTooLong());
      return;
    }
    if (!url.startsWith('/') && !(url === '*' && req.method === 'OPTIONS')) {
      refuse({
        status: 403,
        rule: 'target',
        reason: 'requests inside a tunnel must use a path, not an absolute URL',
      });
      return;
    }
    const hostHeader = req.headers.host;
    const headerAuthority =
      hostHeader === undefined ? undefined : parseAuthority(hostHeader, { defaultPort: 443 });
    if (
      headerAuthority === undefined ||
      !headerAuthority.ok ||
      headerAuthority.host !== host ||
      headerAuthority.port !== port
    ) {
      refuse({
        status: 403,
        rule: 'host',
        reason: 'the Host header differs from the CONNECT host',
      });
      return;
    }
    const decision = this.options.policy.decide({
      host,
      port,
      method: req.method ?? '',
      scheme: 'https',
      target: url,
    });
    if (!decision.allowed) {
      refuse({ status: 403, rule: decision.rule, reason: decision.reason });
      return;
    }
    const problem = this.requestProblem(req, host);
    if (problem !== undefined) {
      refuse(problem);
      return;
    }
    const budgetRefusal = this.budget?.admit(requestHeadBytes(req), declaredBodyLength(req));
    if (budgetRefusal !== undefined) {
      refuse({ status: 403, rule: 'budget', reason: budgetRefusal });
      return;
    }
    this.report({
      host,
      port,
      method: req.method ?? '',
      scheme: 'https',
      allowed: true,
      rule: decision.rule,
      reason: decision.reason,
      // Behind an upstream proxy a name this server could not resolve has no address here.
      ...(ctx.proxy !== undefined && ctx.address === ctx.host ? {} : { address: ctx.address }),
    });
    const path = decision.forward ?? url;
    const headers = forwardedRequestHeaders(
      req,
      port === 443 ? host : `${host}:${port}`,
      this.credentials.get(host),
    );
    const options: https.RequestOptions &
      Pick<tls.ConnectionOptions, 'secureContext' | 'ALPNProtocols'> = {
      host: ctx.address,
      port,
      ...INTERCEPT_STREAM_BUFFER,
      servername: host,
      method: req.method ?? 'GET',
      path,
      headers,
      setHost: false,
      agent: ctx.proxy !== undefined ? this.proxiedHttpsAgent(ctx.proxy) : this.httpsAgent,
      secureContext: this.upstreamTrust,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: (_name: string, cert: tls.PeerCertificate) =>
        tls.checkServerIdentity(host, cert),
      lookup: noLookup as unknown as net.LookupFunction,
      timeout: this.options.connectTimeoutMs ?? 15_000,
    };
    if (req.socket instanceof NativeTlsSocket)
      return this.exchangeNatively(req, res, req.socket, ctx, headers, path);
    const upstream = https.request(options);
    this.relay(req, res, upstream, {
      host,
      port,
      scheme: 'https',
      ...(ctx.proxy !== undefined ? { proxy: ctx.proxy } : {}),
    });
    return undefined;
  }

  private async exchangeNatively(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    client: NativeTlsSocket,
    ctx: TunnelContext,
    headers: http.OutgoingHttpHeaders,
    path: string,
  ): Promise<void> {
    const target = { servername: ctx.host, address: ctx.address, port: ctx.port };
    const proxy = ctx.proxy;
    const key = `${target.servername}|${target.address}|${target.port}${proxy !== undefined ? '|proxied' : ''}`;
    const answerTimeoutMs = this.options.connectTimeoutMs ?? 15_000;
    for (let attempt = 0; ; attempt++) {
      const pooled = await this.nativeUpstreams.take(key);
      let upstream: UpstreamConnection | undefined = pooled;
      try {
        upstream ??= await connectUpstream(
          target,
          (address, port) =>
            proxy !== undefined
              ? this.dialThroughProxy(proxy, ctx.host, port)
              : this.dial(address, port),
          this.nativeUpstreamTrust(),
          answerTimeoutMs,
        );
        const connection = upstream;
        // A sandbox that goes away takes the upstream request with it.
        const abandon = () => {
          if (!res.writableFinished) connection.destroy();
        };
        res.once('close', abandon);
        const reusable = await exchange({
          req,
          res,
          client,
          upstream: connection,
          headers,
          framing: checkedFraming(req),
          answerTimeoutMs,
          idleTimeoutMs: this.options.idleTimeoutMs ?? 300_000,
          path,
          budget: this.budget,
        });
        res.off('close', abandon);
        if (reusable) this.nativeUpstreams.put(key, connection);
        else connection.destroy();
        return;
      } catch (error) {
        upstream?.destroy();
        if (error instanceof BudgetRefusal) {
          this.budgetStop(req, res, { host: ctx.host, port: ctx.port, scheme: 'https' }, error);
          return;
        }
        // A pooled connection the server had closed meanwhile: once more on a new one, only for
        // a request that is safe to repeat (GET, HEAD, OPTIONS without a body): the server may
        // have acted on it before closing, and the decision log allowed it once.
        const retry =
          error instanceof UpstreamClosed &&
          pooled !== undefined &&
          attempt === 0 &&
          !res.headersSent &&
          READ_ONLY_METHODS.has(req.method ?? '') &&
          req.headers['content-length'] === undefined &&
          req.headers['transfer-encoding'] === undefined;
        if (retry) continue;
        this.reportProxyFailure(
          error,
          { host: ctx.host, port: ctx.port, scheme: 'https' },
          req.method ?? '',
        );
        this.answerUpstreamFailure(res, error as Error);
        return;
      }
    }
  }

  /** A 502 when nothing was sent yet; otherwise the response is cut (the tunnel closes). */
  private answerUpstreamFailure(res: http.ServerResponse, error: Error): void {
    // Already answered (a refusal that cut the request): the upstream's failure is expected.
    if (res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      res.socket?.destroy();
      return;
    }
    const body = `Berth egress proxy could not reach the upstream server: ${printable(error.message)}\n`;
    // Nothing of a response that could not be re-sent goes out with the 502.
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    res.writeHead(502, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  /**
   * A budget limit stopped a forwarded request: a 403 when its response had not begun, else
   * the response is cut; reported either way.
   */
  private budgetStop(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: { host: string; port: number; scheme: EgressScheme },
    error: Error,
  ): void {
    if (!res.headersSent) {
      this.refuseResponse(req, res, {
        ...r,
        refusal: { status: 403, rule: 'budget', reason: error.message },
      });
      return;
    }
    this.report({
      ...r,
      method: req.method ?? '',
      allowed: false,
      rule: 'budget',
      reason: `${error.message}; the response was cut`,
    });
    this.refusedConnections.add(req.socket);
    res.destroy();
    req.socket.destroy();
  }

  private relay(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    upstream: http.ClientRequest,
    target: { host: string; port: number; scheme: EgressScheme; proxy?: UpstreamProxy },
  ): void {
    // No listener here may throw out of its event (an uncaught exception would end the
    // orchestrator's process): a failure closes the upstream and answers 502, or cuts the
    // response when it had begun.
    const failed = (error: unknown) => {
      upstream.destroy();
      this.reportProxyFailure(error, target, req.method ?? '');
      this.answerUpstreamFailure(res, error instanceof Error ? error : new Error(String(error)));
    };
    let stopped = false;
    const stop = (error: Error) => {
      if (stopped) return;
      stopped = true;
      this.budgetStop(req, res, target, error);
    };
    upstream.setNoDelay(true);
    upstream.on(
      'continue',
      guarded(() => res.writeContinue(), failed),
    );
    upstream.on(
      'response',
      guarded((answer: http.IncomingMessage) => {
        if (res.headersSent) {
          // The request was cut and answered by the proxy: this answer goes nowhere.
          upstream.destroy();
          return;
        }
        const problem = unrelayableAnswer(answer);
        if (problem !== undefined) {
          answer.resume();
          failed(new Error(problem));
          return;
        }
        // Plain HTTP through the upstream proxy: its own 407 is a refusal of Berth's request,
        // not an answer for the sandbox (whose Proxy-Authorization was dropped anyway).
        if (target.proxy !== undefined && target.scheme === 'http' && answer.statusCode === 407) {
          answer.resume();
          failed(
            new UpstreamProxyRefusal(
              `upstream proxy ${describeProxy(target.proxy)} refused ${req.method ?? ''} http://${target.host}:${target.port}: 407 ${printable(answer.statusMessage ?? '')} (check the credentials in its URL)`,
              407,
            ),
          );
          return;
        }
        const headers = relayedResponseHeaders(answer);
        const budget = this.budget;
        if (budget !== undefined) {
          const length = Number(answer.headers['content-length'] ?? '0');
          const refusal =
            budget.fitsIn(Number.isSafeInteger(length) ? length : 0) ??
            budget.spendIn(
              responseHeadBytes(
                answer.statusCode ?? 0,
                answer.statusMessage ?? '',
                headerPairs(answer),
              ),
            );
          if (refusal !== undefined) {
            answer.resume();
            upstream.destroy();
            stop(new Error(refusal));
            return;
          }
          answer.on('data', (chunk: Buffer) => {
            const over = budget.spendIn(chunk.length);
            if (over === undefined) return;
            upstream.destroy();
            stop(new Error(over));
          });
        }
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
        answer.pipe(res);
        answer.once('error', () => res.destroy());
      }, failed),
    );
    // Upgrades are refused before anything is forwarded: a 101 was never asked for.
    upstream.on(
      'upgrade',
      guarded((_answer: http.IncomingMessage, socket: net.Socket) => {
        socket.destroy();
        failed(new Error('the upstream switched protocols unasked'));
      }, failed),
    );
    upstream.on(
      'timeout',
      guarded(() => upstream.destroy(new Error('upstream timed out')), failed),
    );
    upstream.on(
      'error',
      guarded((error: Error) => {
        this.reportProxyFailure(error, target, req.method ?? '');
        this.answerUpstreamFailure(res, error);
      }, failed),
    );
    res.once(
      'close',
      guarded(() => {
        if (!res.writableFinished) upstream.destroy();
      }, failed),
    );
    // A body that fails (malformed, or the client went away) never ends the upstream request:
    // its connection is closed with the request incomplete.
    req.once('error', () => upstream.destroy());
    req.once('aborted', () => upstream.destroy());
    const budget = this.budget;
    if (budget !== undefined) {
      req.on('data', (chunk: Buffer) => {
        const over = budget.spendOut(chunk.length);
        if (over === undefined) return;
        req.unpipe(upstream);
        upstream.destroy();
        stop(new Error(over));
      });
    }
    req.pipe(upstream);
  }
}

/**
 * Why an upstream's answer cannot be re-sent to the sandbox as it is (a 502 instead), or
 * undefined: a final answer has a status from 200 to 599 (a 1xx is never final: a 101 was never
 * asked for, upgrades being refused) and a reason phrase without control characters.
 */
function unrelayableAnswer(answer: http.IncomingMessage): string | undefined {
  const status = answer.statusCode ?? 0;
  if (status === 101) return 'the upstream switched protocols unasked';
  if (!Number.isInteger(status) || status < 200 || status > 599)
    return `the upstream answered with status ${status}, not a final status from 200 to 599`;
  if (!REASON_PHRASE.test(answer.statusMessage ?? ''))
    return 'the upstream sent a control character in its reason phrase';
  return undefined;
}

/**
 * The client socket as a stream that first yields the bytes already read (the ClientHello).
 * A TLSSocket built on a net.Socket takes over its handle and would never see bytes put back
 * with unshift(), so the TLS server reads through this stream instead.
 */
function replayed(socket: net.Socket, first: Buffer): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(error, callback) {
      socket.destroy();
      callback(error);
    },
  });
  stream.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.once('end', () => stream.push(null));
  socket.once('close', () => stream.destroy());
  socket.on('error', (error: Error) => stream.destroy(error));
  return stream;
}

/** A readable reason for a failed server-side handshake (OpenSSL messages are long). */
function handshakeFailure(error: Error): string {
  const reason =
    /error:[0-9A-F]+:[^:]*:[^:]*:([^:]+)/i.exec(error.message)?.[1] ??
    error.message.split('\n')[0] ??
    '';
  if (/application protocol/i.test(reason))
    return 'the client does not offer ALPN http/1.1 (needed to check methods)';
  if (/wrong version number|http request|unknown protocol|record layer/i.test(reason))
    return 'the first bytes are not a TLS handshake';
  return `TLS handshake failed (${printable(reason)})`;
}

/** A message's header fields as name and value pairs. */
function headerPairs(message: http.IncomingMessage): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < message.rawHeaders.length; i += 2)
    pairs.push([message.rawHeaders[i] ?? '', message.rawHeaders[i + 1] ?? '']);
  return pairs;
}

function hostOfAbsoluteUrl(url: string): string | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url);
  return match?.[1];
}
