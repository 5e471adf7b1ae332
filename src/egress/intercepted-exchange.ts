/**
 * Threat model. One checked request of an intercepted tunnel, forwarded to the vetted upstream
 * over a native TLS leg, and its response sent back. The request has passed every check before
 * it gets here (Node's HTTP server parsed it, the proxy checked it); the response comes from an
 * allowed but untrusted server.
 *
 * Guarantees:
 * - The request is written anew from its parsed form: request line, the headers the proxy chose
 *   (hop-by-hop ones dropped), and its body under the framing Node's parser read (its own
 *   Content-Length, re-chunked, or none), never the received framing headers; a body that runs
 *   past its framing or ends short of it stops the exchange and closes the upstream connection.
 *   No byte of the sandbox's stream reaches the upstream unparsed.
 * - One request at a time on an upstream connection, and a connection verified for one name
 *   carries requests for that name only (the pool's key is name, address and port).
 * - The response head is parsed strictly (http1-response.ts) and re-sent through Node's
 *   ServerResponse with the framing that parse decided (a Connection header of the upstream
 *   cannot take it away): a body of known length goes out under that Content-Length and is
 *   spliced natively, exactly that many bytes (it is the upstream's to send, nothing in it is
 *   checked); chunked and close-delimited bodies are decoded here and re-framed by Node.
 * - A connection is reused only when its response ended exactly where its framing said and,
 *   back in the pool, its idle read got no byte for POOL_SETTLE_MS (bytes after a response,
 *   such as a second head behind a 204, close it): a request never takes an answer that was
 *   sent before it. A request the server closed on without answering is sent again on a new
 *   connection only when it is safe to repeat (the proxy's choice: GET, HEAD, OPTIONS).
 * - An upstream that does not answer in time, fails, or breaks its framing gets a 502 when
 *   nothing was sent yet, or a closed tunnel otherwise: the sandbox never gets a silently
 *   truncated body.
 * - With a budget (egress-budget.ts), the request body and the response (head and body) are
 *   counted; a response whose length would pass `bytesIn` is never sent (BudgetRefusal before
 *   its head), a body that passes a limit stops there (BudgetRefusal; the connection closes).
 * Not covered here: which requests may pass (the proxy) and the TLS itself (native-tls-leg.ts).
 */
import type http from 'node:http';
import type net from 'node:net';
import { ChunkedDecoder, parseResponseHead, type ResponseHead } from './http1-response.js';
import { endToEndHeaders, framingHeaders, type MessageFraming } from './message-framing.js';
import { responseHeadBytes, type EgressBudget } from './egress-budget.js';
import { NativeTlsLeg, type NativeTlsContext } from './native-tls-leg.js';
import type { NativeTlsSocket } from './native-tls-socket.js';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const UNSAFE_VALUE = /[\r\n\0]/;
const POOL_PER_KEY = 8;
const POOL_IDLE_MS = 30_000;
/**
 * How long a connection waits in the pool, its idle read asked for, before it may carry another
 * request. Bytes the server sent after its response (in the same records, or just after) are
 * handed to that idle read by the addon's thread and the connection is closed; without the wait
 * a read asked for before the handover could deliver them to the next request as its answer.
 */
const POOL_SETTLE_MS = 5;

/** An upstream connection did not answer a request it was given (it may have been stale). */
class UpstreamClosed extends Error {}

/** A budget limit stopped the exchange (the message is the refusal's reason). */
export class BudgetRefusal extends Error {}

/** A native TLS leg to an upstream, with promises for reads and writes. */
export class UpstreamConnection {
  private pendingRead:
    { resolve: (data: Buffer | null) => void; reject: (error: Error) => void } | undefined;
  private drained: Array<() => void> = [];
  private failure: Error | undefined;
  private ended = false;
  readonly secure: Promise<void>;

  constructor(readonly leg: NativeTlsLeg) {
    let secured: () => void = () => undefined;
    let failed: (error: Error) => void = () => undefined;
    this.secure = new Promise<void>((resolve, reject) => {
      secured = resolve;
      failed = reject;
    });
    this.secure.catch(() => undefined);
    leg.handlers = {
      secure: () => secured(),
      data: (data) => this.settle(data),
      end: () => {
        this.ended = true;
        this.settle(null);
      },
      drain: () => {
        const waiting = this.drained;
        this.drained = [];
        for (const resume of waiting) resume();
      },
      error: (error) => {
        failed(error);
        this.fail(error);
      },
    };
    leg.raw.once('close', () => this.fail(new Error('the upstream connection closed')));
  }

  get reusable(): boolean {
    return this.leg.isRunning && !this.ended && this.failure === undefined;
  }

  private settle(data: Buffer | null): void {
    const pending = this.pendingRead;
    this.pendingRead = undefined;
    pending?.resolve(data);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const pending = this.pendingRead;
    this.pendingRead = undefined;
    pending?.reject(error);
    const waiting = this.drained;
    this.drained = [];
    for (const resume of waiting) resume();
  }

  /** The next plaintext (up to the end of a head with `headOnly`); null at the end. */
  read(headOnly: boolean, timeoutMs: number): Promise<Buffer | null> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingRead = undefined;
        reject(new Error('the upstream did not answer in time'));
        this.destroy();
      }, timeoutMs);
      timer.unref();
      this.pendingRead = {
        resolve: (data) => {
          clearTimeout(timer);
          resolve(data);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.leg.read(headOnly);
    });
  }

  async write(data: Buffer): Promise<void> {
    this.throwIfFailed();
    if (data.length === 0) return;
    if (this.leg.write(data)) await new Promise<void>((resume) => this.drained.push(resume));
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** While idle in the pool: any byte or end from the server makes the connection unusable. */
  watchIdle(onGone: () => void): void {
    this.pendingRead = {
      resolve: () => {
        this.destroy();
        onGone();
      },
      reject: () => onGone(),
    };
    this.leg.read(false);
  }

  /** Takes the connection out of the pool's watch. */
  unwatch(): void {
    this.pendingRead = undefined;
  }

  destroy(): void {
    this.leg.destroy();
    this.fail(new Error('the upstream connection was closed'));
  }
}

/** Idle upstream connections, by verified name, address and port. */
export class UpstreamPool {
  private readonly idle = new Map<
    string,
    Array<{ connection: UpstreamConnection; timer: NodeJS.Timeout; settledAt: number }>
  >();

  /**
   * An idle connection for `key`, once it settled (see POOL_SETTLE_MS): a connection put back
   * less than that ago is waited for. A turn of the event loop's poll phase passes after the
   * settling time and before the connection is handed out, so that a delivery the addon's
   * thread posted by then has reached the idle watch (which closes the connection).
   */
  async take(key: string): Promise<UpstreamConnection | undefined> {
    for (;;) {
      const asked = performance.now();
      await new Promise<void>((resume) => setImmediate(resume));
      const entries = this.idle.get(key);
      const entry = entries?.at(-1);
      if (entries === undefined || entry === undefined) return undefined;
      if (entry.settledAt > asked) {
        await new Promise<void>((resume) => setTimeout(resume, entry.settledAt - asked));
        continue;
      }
      entries.pop();
      if (entries.length === 0) this.idle.delete(key);
      clearTimeout(entry.timer);
      if (entry.connection.reusable) {
        entry.connection.unwatch();
        return entry.connection;
      }
      entry.connection.destroy();
    }
  }

  put(key: string, connection: UpstreamConnection): void {
    const entries = this.idle.get(key) ?? [];
    if (!connection.reusable || entries.length >= POOL_PER_KEY) {
      connection.destroy();
      return;
    }
    const remove = () => {
      const index = entries.findIndex((e) => e.connection === connection);
      if (index >= 0) clearTimeout(entries.splice(index, 1)[0]?.timer);
      if (entries.length === 0 && this.idle.get(key) === entries) this.idle.delete(key);
    };
    const timer = setTimeout(() => {
      connection.destroy();
      remove();
    }, POOL_IDLE_MS);
    timer.unref();
    entries.push({ connection, timer, settledAt: performance.now() + POOL_SETTLE_MS });
    this.idle.set(key, entries);
    connection.watchIdle(remove);
  }

  destroyAll(): void {
    for (const entries of this.idle.values()) {
      for (const { connection, timer } of entries) {
        clearTimeout(timer);
        connection.destroy();
      }
    }
    this.idle.clear();
  }
}

export interface UpstreamTarget {
  /** The allowed name: SNI and the certificate check. */
  servername: string;
  /** The vetted address literal to dial. */
  address: string;
  port: number;
}

/** Dials the vetted address and starts verified TLS to the allowed name. */
export async function connectUpstream(
  target: UpstreamTarget,
  dial: (address: string, port: number) => net.Socket | Promise<net.Socket>,
  trust: NativeTlsContext,
  timeoutMs: number,
): Promise<UpstreamConnection> {
  // A dial through an upstream proxy resolves with a connected, paused socket (its CONNECT done).
  const dialled = dial(target.address, target.port);
  const raw = dialled instanceof Promise ? await dialled : dialled;
  // The TLS leg reads the socket itself: Node must not start reading it on connect.
  raw.pause();
  if (raw.connecting || raw.readyState === 'closed')
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', () => resolve());
      raw.once('error', reject);
      raw.once('close', () => reject(new Error('the upstream connection closed before TLS')));
    });
  const leg = NativeTlsLeg.start(raw, trust, target.servername);
  if (leg === undefined) {
    raw.destroy();
    throw new Error('native TLS could not take the upstream connection');
  }
  const connection = new UpstreamConnection(leg);
  const timer = setTimeout(() => connection.destroy(), timeoutMs);
  try {
    await connection.secure;
  } catch (error) {
    connection.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  if (leg.alpnProtocol !== false && leg.alpnProtocol !== 'http/1.1') {
    connection.destroy();
    throw new Error(`the upstream chose ALPN ${leg.alpnProtocol}`);
  }
  return connection;
}

/** The request head: request line and the proxy's headers, framing set from `framing` only. */
function requestHead(
  req: http.IncomingMessage,
  path: string,
  headers: http.OutgoingHttpHeaders,
  framing: MessageFraming,
): Buffer {
  const lines = [`${req.method ?? 'GET'} ${path} HTTP/1.1`];
  const all = { ...headers };
  delete all['content-length'];
  delete all['transfer-encoding'];
  for (const [name, value] of Object.entries({ ...all, ...framingHeaders(framing) })) {
    if (value === undefined) continue;
    if (!TOKEN.test(name)) throw new Error(`header name ${JSON.stringify(name)} is not a token`);
    for (const one of Array.isArray(value) ? value : [String(value)]) {
      if (UNSAFE_VALUE.test(one)) throw new Error(`header ${name} has a line break`);
      lines.push(`${name}: ${one}`);
    }
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** Sends the body Node's parser read, under `framing`; never a byte beyond it. */
async function sendBody(
  req: http.IncomingMessage,
  upstream: UpstreamConnection,
  framing: MessageFraming,
  budget: EgressBudget | undefined,
): Promise<void> {
  let sent = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (chunk.length === 0) continue;
    sent += chunk.length;
    const refusal = budget?.spendOut(chunk.length);
    if (refusal !== undefined) throw new BudgetRefusal(refusal);
    if (framing.kind !== 'chunked' && sent > (framing.kind === 'length' ? framing.length : 0))
      throw new Error('the request body is longer than its framing');
    await upstream.write(
      framing.kind === 'chunked'
        ? Buffer.concat([
            Buffer.from(`${chunk.length.toString(16)}\r\n`),
            chunk,
            Buffer.from('\r\n'),
          ])
        : chunk,
    );
  }
  if (framing.kind === 'length' && sent !== framing.length)
    throw new Error('the request body is shorter than its framing');
  if (framing.kind === 'chunked') await upstream.write(Buffer.from('0\r\n\r\n'));
}

/**
 * The response's headers for the sandbox: end-to-end ones, and the framing the head's parse
 * decided (a length the splice then fills exactly; none, so that Node re-frames a chunked or
 * close-delimited body it is given piece by piece). A Content-Length of a response without a
 * body (HEAD, 304) is passed on as the information it is.
 */
function responseHeaders(head: ResponseHead): http.OutgoingHttpHeaders {
  const grouped: Record<string, string[]> = {};
  for (const [name, value] of head.headers) (grouped[name] ??= []).push(value);
  const joined: http.IncomingHttpHeaders = {};
  for (const [name, values] of Object.entries(grouped))
    joined[name] = name === 'set-cookie' ? values : values.join(', ');
  const out = endToEndHeaders(joined);
  if (head.framing.kind === 'length') out['content-length'] = String(head.framing.length);
  else if (head.framing.kind === 'none' && head.declaredLength !== undefined)
    out['content-length'] = String(head.declaredLength);
  return out;
}

export interface ExchangeOptions {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  client: NativeTlsSocket;
  upstream: UpstreamConnection;
  /** The headers to send upstream (the proxy's choice: hop-by-hop dropped, Host set). */
  headers: http.OutgoingHttpHeaders;
  /** The request body's framing, as Node's parser read it. */
  framing: MessageFraming;
  /** How long the upstream may take to answer. */
  answerTimeoutMs: number;
  /** How long a body may pause. */
  idleTimeoutMs: number;
  /** The request target sent upstream (the checked normal form for a host with rules). */
  path?: string;
  budget?: EgressBudget | undefined;
}

/**
 * Forwards one request and its response; resolves true when the upstream connection ended its
 * response cleanly and may carry another request.
 */
export async function exchange(o: ExchangeOptions): Promise<boolean> {
  const { req, res, upstream } = o;
  // The read for the answer's head is asked for before the request goes out: a connection
  // from the pool has a plain read pending (its idle watch), which would otherwise take the
  // answer whole, head and body together.
  let nextHead = upstream.read(true, o.answerTimeoutMs);
  nextHead.catch(() => undefined);
  await upstream.write(requestHead(req, o.path ?? req.url ?? '/', o.headers, o.framing));
  let bodyError: Error | undefined;
  const budget = o.budget;
  const spendIn = (bytes: number) => {
    const refusal = budget?.spendIn(bytes);
    if (refusal !== undefined) throw new BudgetRefusal(refusal);
  };
  const body = sendBody(req, upstream, o.framing, budget).catch((error: Error) => {
    bodyError = error;
    upstream.destroy();
  });
  let head: ResponseHead;
  let answered = false;
  for (;;) {
    const bytes = await nextHead.catch((error: unknown) => {
      throw bodyError instanceof BudgetRefusal ? bodyError : error;
    });
    if (bytes === null) {
      if (bodyError !== undefined) throw bodyError;
      throw answered
        ? new Error('the upstream closed after an interim response')
        : new UpstreamClosed('the upstream closed the connection without answering');
    }
    answered = true;
    const parsed = parseResponseHead(bytes, req.method ?? 'GET');
    if (!parsed.ok) throw new Error(`malformed response from the upstream: ${parsed.reason}`);
    head = parsed.head;
    if (head.status === 101) throw new Error('the upstream switched protocols unasked');
    if (head.status >= 200) break;
    if (head.status === 100) res.writeContinue();
    nextHead = upstream.read(true, o.answerTimeoutMs);
  }
  if (bodyError instanceof BudgetRefusal) throw bodyError;
  if (budget !== undefined) {
    const declared = head.framing.kind === 'length' ? head.framing.length : 0;
    const refusal = budget.fitsIn(declared);
    if (refusal !== undefined) throw new BudgetRefusal(refusal);
    spendIn(responseHeadBytes(head.status, head.reason, head.headers) + declared);
  }
  res.writeHead(head.status, head.reason, responseHeaders(head));
  let clean = !head.closes;
  switch (head.framing.kind) {
    case 'none':
      res.end();
      break;
    case 'length': {
      // The head goes first; the marker written after it becomes the body, sent natively from
      // the upstream leg; the response's 'finish' comes once it was sent.
      res.flushHeaders();
      const { marker, sent } = o.client.splice(upstream.leg, head.framing.length);
      res.end(marker);
      await sent;
      break;
    }
    case 'chunked': {
      const decoder = new ChunkedDecoder();
      while (!decoder.done) {
        const bytes = await upstream.read(false, o.idleTimeoutMs);
        if (bytes === null) throw new Error('the upstream ended in the middle of a chunked body');
        spendIn(bytes.length);
        for (const piece of decoder.push(bytes)) {
          if (!res.write(piece)) await new Promise((resume) => res.once('drain', resume));
        }
      }
      clean &&= !decoder.overrun;
      res.end();
      break;
    }
    case 'close': {
      clean = false;
      for (let bytes = await upstream.read(false, o.idleTimeoutMs); bytes !== null;) {
        spendIn(bytes.length);
        if (!res.write(bytes)) await new Promise((resume) => res.once('drain', resume));
        bytes = await upstream.read(false, o.idleTimeoutMs);
      }
      res.end();
      break;
    }
  }
  await body;
  return clean && bodyError === undefined && upstream.reusable;
}

export { UpstreamClosed };
