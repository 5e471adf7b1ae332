// Every value JavaScript hands to the native addon (native/tunnel-relay) is checked at the N-API
// boundary: a wrong type throws a TypeError, a number that is not whole or out of its range
// (NaN, infinities, negative, fractional, beyond 2^53 - 1, a timeout of 0 or less) a
// RangeError, and nothing starts. Before, such numbers were cast blindly (undefined behaviour in
// C for NaN and negatives; a negative connect timeout turned "still connecting" off).
import net from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import {
  NativeTlsLeg,
  nativeClientContext,
  nativeServerContext,
  type NativeTlsContext,
} from '../../src/egress/native-tls-leg.js';
import {
  activeTunnelRelays,
  nativeAddon,
  relayConnecting,
  stopReading,
  type RelayAddon,
} from '../../src/egress/tunnel-relay.js';
import { descriptorOf, socketPair, until } from './support/sockets.js';

type Thrown = typeof TypeError | typeof RangeError;

/** Values that are not numbers at all. */
const NOT_NUMBERS: unknown[] = ['3', undefined, null, {}, [], 3n, true, () => 3];
/** Numbers no count, descriptor, id or time can be. */
const NEVER_VALID = [NaN, Infinity, -Infinity, -1, 1.5, -0.5, 2 ** 53, 1e300];

/** [value, the error it must throw] for a number that must be whole, in [min, max]. */
function badNumbers(min: number, max: number): Array<[unknown, Thrown]> {
  // The numbers first: they were the dangerous ones (cast blindly before).
  const numbers = [...NEVER_VALID, min - 1, max + 1, min + 0.25];
  const cases = numbers.map((value): [unknown, Thrown] => [value, RangeError]);
  for (const value of NOT_NUMBERS) cases.push([value, TypeError]);
  return cases;
}

const MAX_FD = 2 ** 31 - 1;
const MAX_TIMEOUT = 2 ** 31 - 1;
const MAX_ID = Number.MAX_SAFE_INTEGER;

let addon: RelayAddon;
let ca: CertificateAuthority;
let serverContext: NativeTlsContext;
let clientContext: NativeTlsContext;
const opened: net.Socket[] = [];
const started: Array<() => void> = [];

beforeAll(async () => {
  const loaded = nativeAddon();
  if (loaded === undefined) throw new Error('npm run build:native');
  addon = loaded;
  ca = await CertificateAuthority.create({ commonName: 'arguments test' });
  const leaf = await ca.leafFor('leg.test');
  serverContext = nativeServerContext(leaf.certificatePem, leaf.privateKeyPem);
  clientContext = nativeClientContext([ca.certificatePem]);
});

afterEach(async () => {
  // Anything a broken check let start is stopped, so that one failure does not hide others.
  for (const stop of started.splice(0)) stop();
  for (const s of opened.splice(0)) s.destroy();
  await until(() => activeTunnelRelays() === 0 && addon.tls.active() === 0);
});

/** A connected socket whose descriptor the addon may take. */
async function descriptor(): Promise<number> {
  const [near, far] = await socketPair();
  for (const s of [near, far]) {
    s.on('error', () => undefined);
    opened.push(s);
  }
  stopReading(far);
  return descriptorOf(far);
}

/** Calls `call` and expects `kind` to be thrown, with nothing started. */
function expectRefused(kind: Thrown, call: () => unknown, stop: (id: number) => boolean): void {
  let result: unknown;
  let thrown: unknown;
  try {
    result = call();
  } catch (error) {
    thrown = error;
  }
  if (typeof result === 'number') started.push(() => stop(result));
  expect(thrown, `returned ${String(result)}`).toBeInstanceOf(kind);
}

const noop = () => undefined;

describe('the tunnel relay refuses bad arguments with a clear error', () => {
  it('start(fdA, fdB, idleMs, done): descriptors and the idle time (0: none)', async () => {
    const [a, b] = [await descriptor(), await descriptor()];
    const stop = (id: number) => addon.stop(id);
    for (const [bad, kind] of badNumbers(0, MAX_FD)) {
      expectRefused(kind, () => addon.start(bad as number, b, 0, noop), stop);
      expectRefused(kind, () => addon.start(a, bad as number, 0, noop), stop);
    }
    for (const [bad, kind] of badNumbers(0, MAX_TIMEOUT))
      expectRefused(kind, () => addon.start(a, b, bad as number, noop), stop);
    expectRefused(RangeError, () => addon.start(a, a, 0, noop), stop);
    expectRefused(TypeError, () => addon.start(a, b, 0, 'not a function' as never), stop);
    expect(activeTunnelRelays()).toBe(0);
    // The same arguments, valid, start a relay (the checks refuse only what is wrong).
    const id = addon.start(a, b, 0, noop);
    expect(Number.isSafeInteger(id)).toBe(true);
    expect(addon.stop(id)).toBe(true);
  });

  it('connect(...): descriptor, port, address, initial bytes, idle time, connect timeout (>= 1 ms)', async () => {
    const fd = await descriptor();
    const listener = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const { port } = listener.address() as net.AddressInfo;
    const stop = (id: number) => addon.stop(id);
    const connect =
      (...args: unknown[]) =>
      () =>
        addon.connect(...(args as [number, string, number, Buffer, number, number, typeof noop]));
    const empty = Buffer.alloc(0);
    try {
      for (const [bad, kind] of badNumbers(0, MAX_FD))
        expectRefused(kind, connect(bad, '127.0.0.1', port, empty, 0, 1000, noop), stop);
      for (const [bad, kind] of [...badNumbers(1, 65_535), [0, RangeError] as [unknown, Thrown]])
        expectRefused(kind, connect(fd, '127.0.0.1', bad, empty, 0, 1000, noop), stop);
      for (const [bad, kind] of badNumbers(0, MAX_TIMEOUT))
        expectRefused(kind, connect(fd, '127.0.0.1', port, empty, bad, 1000, noop), stop);
      for (const [bad, kind] of [
        ...badNumbers(1, MAX_TIMEOUT),
        [0, RangeError] as [unknown, Thrown],
        [-5000, RangeError] as [unknown, Thrown],
      ])
        expectRefused(kind, connect(fd, '127.0.0.1', port, empty, 0, bad, noop), stop);
      expectRefused(TypeError, connect(fd, 127, port, empty, 0, 1000, noop), stop);
      expectRefused(
        RangeError,
        connect(fd, `127.0.0.1${' '.repeat(80)}`, port, empty, 0, 1000, noop),
        stop,
      );
      expectRefused(TypeError, connect(fd, '127.0.0.1', port, 'hello', 0, 1000, noop), stop);
      expectRefused(TypeError, connect(fd, '127.0.0.1', port, empty, 0, 1000, 42), stop);
      expect(activeTunnelRelays()).toBe(0);
    } finally {
      listener.close();
    }
  });

  it('testOnlyAdvanceGeneration(staleId, count) checks both numbers too', () => {
    for (const part of [addon, addon.tls]) {
      for (const [bad, kind] of badNumbers(0, MAX_ID)) {
        expect(() => part.testOnlyAdvanceGeneration(bad as number, 0)).toThrow(kind);
        expect(() => part.testOnlyAdvanceGeneration(0, bad as number)).toThrow(kind);
      }
    }
  });

  it('stop(id): an id is a whole number from 0 to 2^53 - 1', () => {
    for (const [bad, kind] of badNumbers(0, MAX_ID))
      expect(() => addon.stop(bad as number)).toThrow(kind);
    // A well-formed id of no relay is simply not running.
    expect(addon.stop(MAX_ID)).toBe(false);
    expect(addon.stop(0)).toBe(false);
  });

  it('relayConnecting() checks the timeouts and the port itself and throws (no silent fallback)', async () => {
    const [, clientEnd] = await socketPair();
    opened.push(clientEnd);
    const target = { address: '127.0.0.1', port: 443 };
    for (const timeouts of [
      { idleMs: 60_000, connectMs: 0 },
      { idleMs: 60_000, connectMs: -1 },
      { idleMs: 60_000, connectMs: NaN },
      { idleMs: -1, connectMs: 1000 },
      { idleMs: 0.5, connectMs: 1000 },
    ])
      expect(() => relayConnecting(clientEnd, target, Buffer.alloc(0), timeouts)).toThrow(
        RangeError,
      );
    expect(() =>
      relayConnecting(clientEnd, { address: '127.0.0.1', port: 70_000 }, Buffer.alloc(0), {
        idleMs: 0,
        connectMs: 1000,
      }),
    ).toThrow(RangeError);
    expect(activeTunnelRelays()).toBe(0);
    expect(clientEnd.destroyed).toBe(false);
  });
});

describe('the TLS legs refuse bad arguments with a clear error', () => {
  it('start(fd, context, host, initialBytes, onEvent)', async () => {
    const fd = await descriptor();
    const legs = addon.tls;
    const stop = (id: number) => legs.stop(id);
    for (const [bad, kind] of badNumbers(0, MAX_FD))
      expectRefused(
        kind,
        () => legs.start(bad as number, serverContext.native, null, null, noop),
        stop,
      );
    // The context must be one of the addon's, of the right kind for the side.
    for (const context of [{}, null, 3, 'context', clientContext.native])
      expectRefused(TypeError, () => legs.start(fd, context as object, null, null, noop), stop);
    expectRefused(
      TypeError,
      () => legs.start(fd, serverContext.native, 'leg.test', null, noop),
      stop,
    );
    expectRefused(
      TypeError,
      () => legs.start(fd, serverContext.native, 3 as never, null, noop),
      stop,
    );
    expectRefused(RangeError, () => legs.start(fd, clientContext.native, '', null, noop), stop);
    expectRefused(
      TypeError,
      () => legs.start(fd, serverContext.native, null, 'hello' as never, noop),
      stop,
    );
    expectRefused(
      TypeError,
      () => legs.start(fd, serverContext.native, null, null, 7 as never),
      stop,
    );
    expect(legs.active()).toBe(0);
  });

  it('read, write, end, stop, idleMs and splice check the ids, the splice length and the types', async () => {
    const legs = addon.tls;
    const [target, source] = [await descriptor(), await descriptor()].map((fd) =>
      legs.start(fd, serverContext.native, null, null, noop),
    ) as [number, number];
    started.push(
      () => legs.stop(target),
      () => legs.stop(source),
    );
    for (const [bad, kind] of badNumbers(0, MAX_ID)) {
      expect(() => legs.read(bad as number, false)).toThrow(kind);
      expect(() => legs.write(bad as number, Buffer.from('x'))).toThrow(kind);
      expect(() => legs.end(bad as number)).toThrow(kind);
      expect(() => legs.stop(bad as number)).toThrow(kind);
      expect(() => legs.idleMs(bad as number)).toThrow(kind);
      expect(() => legs.splice(bad as number, source, 10)).toThrow(kind);
      expect(() => legs.splice(target, bad as number, 10)).toThrow(kind);
    }
    for (const [bad, kind] of [...badNumbers(1, MAX_ID), [0, RangeError] as [unknown, Thrown]])
      expect(() => legs.splice(target, source, bad as number)).toThrow(kind);
    expect(() => legs.read(target, 'yes' as never)).toThrow(TypeError);
    expect(() => legs.write(target, 'text' as never)).toThrow(TypeError);
    // Nothing was changed by the refusals: both legs still run and take valid calls.
    expect(legs.idleMs(target)).toBeGreaterThanOrEqual(0);
    expect(legs.splice(target, source, 1)).toBe(true);
    expect(legs.stop(target)).toBe(true);
    // The source of a splice whose target stopped fails on its own (tls_legs.c).
    await until(() => legs.idleMs(source) === -1);
  });

  it('serverContext and clientContext take strings only', () => {
    const legs = addon.tls;
    expect(() => legs.serverContext(3 as never, 'key')).toThrow(TypeError);
    expect(() => legs.serverContext('cert', {} as never)).toThrow(TypeError);
    expect(() => legs.clientContext(null as never)).toThrow(TypeError);
  });

  it('NativeTlsLeg.splice checks the length itself', async () => {
    const [, far] = await socketPair();
    opened.push(far);
    const [, other] = await socketPair();
    opened.push(other);
    const target = NativeTlsLeg.start(far, serverContext, undefined);
    const source = NativeTlsLeg.start(other, serverContext, undefined);
    if (target === undefined || source === undefined) throw new Error('the legs did not start');
    started.push(
      () => target.stop(),
      () => source.stop(),
    );
    for (const length of [0, -1, 0.5, NaN, Infinity, 2 ** 53])
      expect(() => target.splice(source, length)).toThrow(RangeError);
  });
});
