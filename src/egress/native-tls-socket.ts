/**
 * The sandbox's side of an intercepted tunnel on a native TLS leg, as a Duplex of plaintext with
 * the parts of net.Socket that Node's HTTP server uses (timeouts, destroySoon, addresses), so
 * that every request is parsed by Node's HTTP server as before. See native-tls-leg.ts for the
 * threat model; this adapter adds one guarantee: a splice is ordered with the stream's writes
 * (its marker goes through the writable queue), so a response's body follows its head and
 * precedes the next response, however Node's HTTP server corks and buffers.
 */
import type net from 'node:net';
import { Duplex } from 'node:stream';
import type { NativeTlsLeg } from './native-tls-leg.js';

interface SpliceRequest {
  source: NativeTlsLeg;
  length: number;
  settle: (error?: Error | null) => void;
}

export class NativeTlsSocket extends Duplex {
  readonly encrypted = true;
  private reading = false;
  private waitingWrite: ((error?: Error | null) => void) | undefined;
  private waitingFinal: ((error?: Error | null) => void) | undefined;
  private readonly splices = new WeakMap<Buffer, SpliceRequest>();
  private timeoutMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastActivity = Date.now();

  constructor(readonly leg: NativeTlsLeg) {
    super({ allowHalfOpen: false, highWaterMark: 256 * 1024 });
    leg.raw.once('close', () => this.destroy());
    leg.handlers = {
      secure: () => this.emit('secure'),
      data: (data) => {
        this.touch();
        this.reading = false;
        this.push(data);
      },
      end: () => {
        this.reading = false;
        this.push(null);
      },
      drain: () => this.callBack('waitingWrite'),
      finished: () => this.callBack('waitingFinal'),
      spliced: () => {
        this.touch();
        this.callBack('waitingWrite');
      },
      error: (error) => this.destroy(error),
    };
  }

  get alpnProtocol(): string | false {
    return this.leg.alpnProtocol;
  }

  get servername(): string | undefined {
    return this.leg.servername;
  }

  /**
   * A one-byte stand-in for the next `length` plaintext bytes of `source` (an upstream leg):
   * written to this socket (through a ServerResponse, so that its 'finish' waits for it), it is
   * replaced by those bytes, after everything written before. `sent` settles when they were.
   */
  splice(source: NativeTlsLeg, length: number): { marker: Buffer; sent: Promise<void> } {
    const marker = Buffer.alloc(1);
    const sent = new Promise<void>((resolve, reject) => {
      this.splices.set(marker, {
        source,
        length,
        settle: (error) => (error ? reject(error) : resolve()),
      });
    });
    sent.catch(() => undefined);
    return { marker, sent };
  }

  /** Writes a splice directly (tests; the proxy writes the marker through its response). */
  spliceFrom(source: NativeTlsLeg, length: number): Promise<void> {
    const { marker, sent } = this.splice(source, length);
    this.write(marker);
    return sent;
  }

  private touch(): void {
    this.lastActivity = Date.now();
  }

  private callBack(which: 'waitingWrite' | 'waitingFinal', error?: Error): void {
    const callback = this[which];
    this[which] = undefined;
    callback?.(error);
  }

  override _read(): void {
    if (this.reading || !this.leg.isRunning) return;
    this.reading = true;
    this.leg.read();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.touch();
    const splice = this.splices.get(chunk);
    try {
      if (splice !== undefined) {
        // The write completes when the spliced bytes were sent ('spliced').
        this.splices.delete(chunk);
        this.leg.splice(splice.source, splice.length);
        this.waitingWrite = (error) => {
          splice.settle(error);
          callback(error);
        };
        return;
      }
      if (this.leg.write(chunk)) this.waitingWrite = callback;
      else callback();
    } catch (error) {
      // The leg ended on its own thread and its event is on the way.
      splice?.settle(error as Error);
      callback(error as Error);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    // 'finish' (after which Node's HTTP server may destroy the socket) waits until the leg has
    // sent everything, its close_notify and its FIN.
    if (this.leg.end()) this.waitingFinal = callback;
    else callback(new Error('the TLS connection is closed'));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.leg.destroy();
    this.clearTimer();
    this.callBack('waitingWrite', error ?? new Error('the TLS connection is closed'));
    callback(error);
  }

  // ------------------------------------------------ the parts of net.Socket HTTP uses

  setTimeout(ms: number, callback?: () => void): this {
    this.timeoutMs = ms;
    if (callback !== undefined) this.once('timeout', callback);
    this.clearTimer();
    if (ms > 0) this.armTimer(ms);
    return this;
  }

  private armTimer(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.destroyed || this.timeoutMs === 0) return;
      // Spliced bytes pass without JavaScript: the leg knows when bytes last moved.
      const idle = Math.min(Date.now() - this.lastActivity, this.leg.idleMs());
      if (idle >= this.timeoutMs) {
        this.emit('timeout');
        // Like net.Socket: the timeout repeats until it is turned off or the socket is gone.
        if (!this.destroyed && this.timeoutMs > 0) this.armTimer(this.timeoutMs);
      } else {
        this.armTimer(this.timeoutMs - idle);
      }
    }, ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get timeout(): number {
    return this.timeoutMs;
  }

  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.leg.raw.setKeepAlive(enable, initialDelay);
    return this;
  }

  ref(): this {
    this.leg.raw.ref();
    return this;
  }

  unref(): this {
    this.leg.raw.unref();
    return this;
  }

  /** Ends the writable side and destroys the socket once that is done. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  get remoteAddress(): string | undefined {
    return this.leg.raw.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.leg.raw.remotePort;
  }

  get remoteFamily(): string | undefined {
    return this.leg.raw.remoteFamily;
  }

  get localAddress(): string | undefined {
    return this.leg.raw.localAddress;
  }

  get localPort(): number | undefined {
    return this.leg.raw.localPort;
  }

  address(): ReturnType<net.Socket['address']> {
    return this.leg.raw.address();
  }
}
