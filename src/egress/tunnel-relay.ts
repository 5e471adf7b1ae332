/**
 * Threat model. A passthrough tunnel's bytes (from a sandbox that may be hostile, and from an
 * upstream server) are relayed here by the native tunnel relay (native/tunnel-relay), on the
 * addon's own thread, instead of through JavaScript streams. The bytes are never interpreted on
 * that path; every check was made before the hand-off. The relay opens the upstream connection
 * itself, to the address literal the proxy vetted (no name is resolved in native code).
 *
 * Guarantees:
 * - A socket is handed to the relay only when Node holds nothing of it: no unread bytes (the
 *   caller takes them first and they are sent first), no write still queued, and Node's reading
 *   stopped; so the upstream gets the byte stream exactly as the client sent it, in order.
 * - The relay is stopped before the client socket's descriptor is closed, whatever closes it
 *   (the relay's own end, an error, the proxy's close, a timeout): its `_destroy` stops it first,
 *   synchronously, so a reused descriptor number never receives tunnel bytes. The upstream
 *   connection is the relay's own and closed by it.
 * - Idle tunnels end after the given time, connects that do not complete after theirs (the relay
 *   thread checks; Node's socket timeouts are off because Node sees no traffic).
 * - When the addon is not built or cannot start a relay, nothing was changed and the caller
 *   connects and relays with streams (same behaviour, more CPU).
 * - A relay's id is never given to another relay in this process, so a late stop() can never
 *   end someone else's tunnel; the timeouts and the port are checked here and again in C (a
 *   bad value throws a RangeError: it is the caller's bug, not a reason to fall back).
 * - The relay thread holds the lock it shares with this thread for bounded turns only (about
 *   1 MB per direction), so a tunnel at full speed never stalls the event loop.
 * The TLS legs of intercepted tunnels, in the same addon, have their own module
 * (native-tls-leg.ts); this one loads the addon for both.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddonBuild } from '../config/process-env.js';

/**
 * How the addon's thread held its lock since the last call (which starts the next period): the
 * number of holds, the most bytes moved in one, the longest one. Diagnostics, tests, bench.
 */
export interface LockStats {
  holds: number;
  maxHoldBytes: number;
  maxHoldMs: number;
}

/** The TLS legs of intercepted tunnels (native/tunnel-relay/tls_legs.c). */
export interface TlsLegAddon {
  serverContext(certificatePem: string, keyPem: string): object;
  clientContext(trustedPem: string): object;
  start(
    fd: number,
    context: object,
    host: string | null,
    initial: Buffer | null,
    onEvent: (kind: number, a?: Buffer | string, b?: string) => void,
  ): number;
  read(id: number, headOnly: boolean): boolean;
  write(id: number, data: Buffer): boolean;
  end(id: number): boolean;
  splice(targetId: number, sourceId: number, length: number): boolean;
  idleMs(id: number): number;
  stop(id: number): boolean;
  active(): number;
  lockStats(): LockStats;
  /** TEST ONLY: see testOnlyAdvanceGeneration in tls_legs.c. */
  testOnlyAdvanceGeneration(staleId: number, count: number): number | null;
}

/**
 * The addon's entry points. Ids are whole numbers up to 2^53 - 1 (exact as JavaScript numbers),
 * never given out twice in a process. Every argument is checked in C: a wrong type throws a
 * TypeError, a number that is not whole or out of range (NaN, negative, a fraction, a timeout
 * of 0 or less) a RangeError.
 */
export interface RelayAddon {
  tls: TlsLegAddon;
  start(
    fdA: number,
    fdB: number,
    idleMs: number,
    done: (reason: string, errno: number, aToB: number, bToA: number) => void,
  ): number;
  connect(
    clientFd: number,
    address: string,
    port: number,
    initial: Buffer,
    idleMs: number,
    connectTimeoutMs: number,
    done: (reason: string, errno: number, aToB: number, bToA: number) => void,
  ): number;
  stop(id: number): boolean;
  active(): number;
  lockStats(): LockStats;
  /** TEST ONLY: see testOnlyAdvanceGeneration in tunnel_relay.c. */
  testOnlyAdvanceGeneration(staleId: number, count: number): number | null;
}

/** The parts of Node's stream handle the hand-off needs (not in Node's public types). */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
  writeQueueSize?: number;
}

type HandledSocket = net.Socket & {
  _handle?: StreamHandle | null;
  _destroy: (
    this: net.Socket,
    error: Error | null,
    callback: (error?: Error | null) => void,
  ) => void;
};

export interface TunnelRelayEnd {
  /** `end`: both sides closed; `error`: a socket failed; `idle`: nothing moved for the idle time. */
  reason: 'end' | 'error' | 'idle';
  errno: number;
  fromClient: number;
  fromUpstream: number;
}

/** The longest timeout the addon takes, as Node's timers (about 24.8 days). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * Throws a RangeError unless `value` is a whole number from `min` to `max`: the same check the
 * addon makes at its boundary (native_common.h), made before anything is handed over.
 */
export function checkWholeNumber(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${what} must be a whole number from ${min} to ${max}, not ${value}`);
}

/**
 * The addon's file, relative to the project root. BERTH_NATIVE_ASAN=1 loads the sanitizer build
 * (`npm run build:native:asan`, AddressSanitizer + UndefinedBehaviorSanitizer) instead; only
 * scripts/test-native-asan.sh sets it, with the sanitizer runtime preloaded (the ASan build
 * does not load without it, and then nothing falls back silently: tunnelRelayStatus says why).
 */
export const ADDON_FILE =
  nativeAddonBuild() === 'asan'
    ? 'native/tunnel-relay/build-asan/tunnel_relay.node'
    : 'native/tunnel-relay/build/Release/tunnel_relay.node';

let addon: RelayAddon | undefined;
let unavailable: string | undefined;

/** The project root: this file is src/egress/*.ts or dist/egress/*.js. */
function projectRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** The loaded addon, or undefined when it is not built (see `tunnelRelayStatus`). */
export function nativeAddon(): RelayAddon | undefined {
  return load();
}

function load(): RelayAddon | undefined {
  if (addon !== undefined || unavailable !== undefined) return addon;
  if (process.platform !== 'linux') {
    unavailable = 'the native relay is built for Linux only';
    return undefined;
  }
  const file = path.join(projectRoot(), ADDON_FILE);
  if (!existsSync(file)) {
    unavailable = `${ADDON_FILE} is not built (npm run build:native)`;
    return undefined;
  }
  try {
    addon = createRequire(import.meta.url)(file) as RelayAddon;
  } catch (error) {
    unavailable = `${ADDON_FILE} does not load: ${(error as Error).message}`;
  }
  return addon;
}

/** Whether tunnels can use the native relay, and why not. */
export function tunnelRelayStatus(): { available: true } | { available: false; reason: string } {
  return load() !== undefined
    ? { available: true }
    : { available: false, reason: unavailable ?? 'unknown' };
}

/** Relays running now (all proxies of this process). */
export function activeTunnelRelays(): number {
  return load()?.active() ?? 0;
}

/** Stops Node reading from the socket (nothing more is read into its stream buffer). */
export function stopReading(socket: net.Socket): void {
  const handle = (socket as HandledSocket)._handle;
  if (handle?.reading === true) {
    handle.reading = false;
    handle.readStop();
  }
}

/**
 * Takes what Node already read from the socket but nobody consumed, and stops Node reading
 * more. The caller forwards these bytes before handing the socket to the relay.
 */
export function takeUnread(socket: net.Socket): Buffer[] {
  const chunks: Buffer[] = [];
  const read = (): Buffer | null => socket.read() as Buffer | null;
  for (let chunk = read(); chunk !== null; chunk = read()) chunks.push(chunk);
  // read() may have asked the handle to read again; it reads only on the next loop turn.
  stopReading(socket);
  return chunks;
}

/**
 * Undoes `takeUnread` when the relay did not take the socket: Node reads again (its stream may
 * be waiting for a read it asked for before reading stopped).
 */
export function resumeReading(socket: net.Socket): void {
  const handle = (socket as HandledSocket)._handle;
  if (handle == null || socket.destroyed || handle.reading === true) return;
  handle.reading = true;
  handle.readStart();
}

/**
 * The socket's descriptor when Node holds nothing of it (no unread bytes, no queued write), so
 * native code may take its byte stream over; undefined otherwise.
 */
export function quietDescriptor(socket: net.Socket): number | undefined {
  return quiet(socket);
}

/**
 * Makes `stop` run, synchronously, before the socket's descriptor is closed, whoever destroys
 * the socket (a reused descriptor number must never reach native code that still holds it).
 */
export function stopBeforeClose(socket: net.Socket, stop: () => void): void {
  const handled = socket as HandledSocket;
  const destroy = handled._destroy.bind(handled);
  handled._destroy = (error, callback) => {
    stop();
    destroy(error, callback);
  };
}

function quiet(socket: HandledSocket): number | undefined {
  const handle = socket._handle;
  if (handle == null || typeof handle.fd !== 'number' || handle.fd < 0) return undefined;
  if (socket.destroyed || socket.writableLength > 0 || (handle.writeQueueSize ?? 0) > 0)
    return undefined;
  if (socket.readableLength > 0) return undefined;
  return handle.fd;
}

/**
 * Hands a client socket to the native relay, which connects to `address` (a vetted IP literal)
 * itself, sends `initial` there first (the checked ClientHello and anything the client sent
 * after it), then relays. The upstream connection is the relay's own: no JavaScript turn lies
 * between the check and the connect, and the relay closes it when it ends. Returns false,
 * having changed nothing, when it cannot (addon missing, the socket not idle, not an address
 * literal); the caller then connects and relays itself. When the relay ends (a refused or timed
 * out connect included), the client socket is destroyed and `onEnd` says why.
 */
export function relayConnecting(
  client: net.Socket,
  target: { address: string; port: number },
  initial: Buffer,
  timeouts: { idleMs: number; connectMs: number },
  onEnd?: (end: TunnelRelayEnd) => void,
): boolean {
  // The addon checks these too; a bad value is the caller's bug, not a reason to fall back.
  checkWholeNumber('port', target.port, 1, 65_535);
  checkWholeNumber('idleMs (0: none)', timeouts.idleMs, 0, MAX_TIMEOUT_MS);
  checkWholeNumber('connectMs', timeouts.connectMs, 1, MAX_TIMEOUT_MS);
  const relay = load();
  const fd = quietDescriptor(client);
  if (relay === undefined || fd === undefined) return false;
  let running = true;
  let id: number;
  try {
    id = relay.connect(
      fd,
      target.address,
      target.port,
      initial,
      timeouts.idleMs,
      timeouts.connectMs,
      (reason, errno, aToB, bToA) => {
        if (!running) return;
        running = false;
        client.destroy();
        onEnd?.({
          reason: reason as TunnelRelayEnd['reason'],
          errno,
          fromClient: aToB,
          fromUpstream: bToA,
        });
      },
    );
  } catch {
    return false;
  }
  stopReading(client);
  client.setTimeout(0);
  stopBeforeClose(client, () => {
    if (running) {
      running = false;
      relay.stop(id);
    }
  });
  return true;
}
