/**
 * Threat model. An intercepted tunnel's TLS is terminated (towards the sandbox) and originated
 * (towards the vetted upstream) by the addon's TLS legs (native/tunnel-relay/tls_legs.c), on the
 * addon's own thread. A leg hands its plaintext to JavaScript, where every request is parsed by
 * Node's HTTP server and checked by the proxy, exactly as with Node's TLS. The one thing that
 * bypasses JavaScript is a splice: the body of an upstream *response* whose length JavaScript
 * read from the response head, moved from the upstream leg to the sandbox's leg as it is.
 *
 * Guarantees:
 * - A socket is handed to a leg only when Node holds nothing of it (no unread bytes, no queued
 *   write) and Node's reading is stopped; bytes Node had read are given to the leg first.
 * - The leg is stopped, synchronously, before the raw socket's descriptor closes, whoever closes
 *   it (the leg's owner, the proxy's close, an error).
 * - An upstream leg verifies the certificate against the host name given here (the allowed
 *   name) with the trust store of its context; 'secure' reports ALPN and SNI before any
 *   plaintext is delivered.
 * - Nothing is buffered without bound: reads are asked for one batch at a time (the leg holds at
 *   most 256 KB of plaintext), a writer is told to wait once 1 MB is queued.
 * - Plaintext never flows from the sandbox's leg to the upstream's without JavaScript: a splice
 *   only takes the upstream's bytes, for a length JavaScript gave (a whole number from 1 to
 *   2^53 - 1, checked here and in C).
 * - A leg's id is never given to another leg in this process, and when one leg of a splice
 *   stops or fails the other fails at once ('error'): a splice never takes another
 *   connection's bytes and never waits forever (tls_legs.c).
 * Not covered here: what may pass (the proxy's checks) and where the raw socket leads.
 */
import type net from 'node:net';
import {
  checkWholeNumber,
  nativeAddon,
  quietDescriptor,
  resumeReading,
  stopBeforeClose,
  stopReading,
  takeUnread,
  type TlsLegAddon,
} from './tunnel-relay.js';

const EVENT_SECURE = 1;
const EVENT_DATA = 2;
const EVENT_END = 3;
const EVENT_DRAIN = 4;
const EVENT_ERROR = 5;
const EVENT_FINISHED = 6;
const EVENT_SPLICED = 7;

/** A TLS context for the addon's legs (an OpenSSL SSL_CTX, freed when garbage collected). */
export interface NativeTlsContext {
  readonly native: object;
}

function tlsLegs(): TlsLegAddon | undefined {
  return nativeAddon()?.tls;
}

/** Whether intercepted tunnels can use native TLS. */
export function nativeTlsAvailable(): boolean {
  return tlsLegs() !== undefined;
}

/** The sandbox side's context: the leaf certificate (chain) and key; ALPN http/1.1 only. */
export function nativeServerContext(certificatePem: string, keyPem: string): NativeTlsContext {
  const legs = tlsLegs();
  if (legs === undefined) throw new Error('native TLS is not built');
  return { native: legs.serverContext(certificatePem, keyPem) };
}

/** The upstream side's context: the certificates trusted for upstream servers. */
export function nativeClientContext(trusted: readonly string[]): NativeTlsContext {
  const legs = tlsLegs();
  if (legs === undefined) throw new Error('native TLS is not built');
  return { native: legs.clientContext(trusted.join('\n')) };
}

/** Active legs in this process (tests, diagnostics). */
export function activeTlsLegs(): number {
  return tlsLegs()?.active() ?? 0;
}

/** What a leg reports; each handler is set by the leg's one owner. */
export interface NativeTlsLegHandlers {
  secure?: () => void;
  data?: (data: Buffer) => void;
  end?: () => void;
  drain?: () => void;
  finished?: () => void;
  spliced?: () => void;
  /** The leg failed and has stopped itself. */
  error?: (error: Error) => void;
}

/** One TLS connection run by the addon; its owner reads, writes, ends and stops it. */
export class NativeTlsLeg {
  alpnProtocol: string | false = false;
  servername: string | undefined;
  handlers: NativeTlsLegHandlers = {};
  private running = true;

  private constructor(
    readonly raw: net.Socket,
    private readonly legs: TlsLegAddon,
    /** The addon's id of this leg (diagnostics and tests). */
    readonly id: number,
  ) {}

  /**
   * Starts TLS on a connected socket: as the server (host undefined) or as a client verifying
   * `host`. `initial` holds bytes already read from the socket (the sandbox's ClientHello).
   * Returns undefined, having changed nothing, when the addon is missing or the socket is busy.
   */
  static start(
    raw: net.Socket,
    context: NativeTlsContext,
    host: string | undefined,
    initial: Buffer = Buffer.alloc(0),
  ): NativeTlsLeg | undefined {
    const legs = tlsLegs();
    if (legs === undefined) return undefined;
    const unread = takeUnread(raw);
    const fd = quietDescriptor(raw);
    if (fd === undefined) {
      for (const chunk of unread.reverse()) raw.unshift(chunk);
      resumeReading(raw);
      return undefined;
    }
    const first = unread.length > 0 ? Buffer.concat([initial, ...unread]) : initial;
    const holder: { leg?: NativeTlsLeg } = {};
    // Events come through the event loop, never during start(): the leg is set by then.
    const id = legs.start(
      fd,
      context.native,
      host ?? null,
      first.length > 0 ? first : null,
      (kind, a, b) => holder.leg?.dispatch(kind, a, b),
    );
    stopReading(raw);
    raw.setTimeout(0);
    const started = new NativeTlsLeg(raw, legs, id);
    holder.leg = started;
    stopBeforeClose(raw, () => started.stop());
    return started;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Asks for the next plaintext (one 'data' or 'end'); `headOnly`: up to the first blank line. */
  read(headOnly = false): void {
    if (this.running) this.legs.read(this.id, headOnly);
  }

  /** Queues plaintext; true when the writer should wait for 'drain'. Throws when stopped. */
  write(data: Buffer): boolean {
    if (!this.running) throw new Error('the TLS connection is closed');
    return this.legs.write(this.id, data);
  }

  /** After everything queued: close_notify and FIN ('finished' when done). */
  end(): boolean {
    return this.running && this.legs.end(this.id);
  }

  /** Sends `source`'s next `length` plaintext bytes here, after what is queued ('spliced'). */
  splice(source: NativeTlsLeg, length: number): void {
    checkWholeNumber('the splice length', length, 1, Number.MAX_SAFE_INTEGER);
    if (!this.running || !source.running) throw new Error('the TLS connection is closed');
    this.legs.splice(this.id, source.id, length);
  }

  /** Milliseconds since bytes last moved on this leg, spliced ones included. */
  idleMs(): number {
    return this.running ? this.legs.idleMs(this.id) : 0;
  }

  /** Stops the leg now (synchronous: its descriptor may be closed right after). */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.legs.stop(this.id);
  }

  /** Stops the leg and closes its socket. */
  destroy(): void {
    this.stop();
    this.raw.destroy();
  }

  private dispatch(kind: number, a?: Buffer | string, b?: string): void {
    if (!this.running) return;
    const h = this.handlers;
    switch (kind) {
      case EVENT_SECURE:
        this.alpnProtocol = typeof a === 'string' && a !== '' ? a : false;
        this.servername = b !== undefined && b !== '' ? b : undefined;
        h.secure?.();
        return;
      case EVENT_DATA:
        h.data?.(a as Buffer);
        return;
      case EVENT_END:
        h.end?.();
        return;
      case EVENT_DRAIN:
        h.drain?.();
        return;
      case EVENT_FINISHED:
        h.finished?.();
        return;
      case EVENT_SPLICED:
        h.spliced?.();
        return;
      case EVENT_ERROR:
        // The leg has stopped itself on its thread.
        this.running = false;
        h.error?.(new Error(typeof a === 'string' ? a : 'TLS failed'));
        return;
    }
  }
}
