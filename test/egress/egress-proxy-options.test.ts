// The egress proxy's numeric options are checked when it is made: a time that is not a whole
// number of milliseconds from 1 to MAX_TIMEOUT_MS, or a connection limit that is not a whole
// number from 1 to MAX_CONNECTIONS, is refused with a BerthError (invalid_input) naming the
// option. Before, such a value was taken as it was: NaN, 0 or a negative time turns a Node socket
// timeout off, and the native relay threw a RangeError only when a sandbox opened a tunnel.
import { describe, expect, it } from 'vitest';
import { EgressPolicy } from '../../src/domain/internet/egress-policy.js';
import { BerthError } from '../../src/errors/berth-error.js';
import {
  EgressProxy,
  MAX_CONNECTIONS,
  type EgressProxyOptions,
} from '../../src/egress/egress-proxy.js';
import { MAX_TIMEOUT_MS } from '../../src/egress/tunnel-relay.js';

const policy = new EgressPolicy({
  access: 'allowlist',
  presets: [],
  domains: ['example.test'],
  tunnelOnly: [],
});

const OPTIONS: Array<[keyof EgressProxyOptions, number]> = [
  ['connectTimeoutMs', MAX_TIMEOUT_MS],
  ['idleTimeoutMs', MAX_TIMEOUT_MS],
  ['clientHelloTimeoutMs', MAX_TIMEOUT_MS],
  ['maxConnections', MAX_CONNECTIONS],
];

/** What the constructor throws with this option set to `value`, or undefined. */
function thrown(option: keyof EgressProxyOptions, value: unknown): unknown {
  try {
    new EgressProxy({ policy, [option]: value });
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('EgressProxy numeric options', () => {
  for (const [option, max] of OPTIONS) {
    it(`refuses a value of ${option} that is not a whole number from 1 to ${max}`, () => {
      const bad: unknown[] = [NaN, Infinity, -Infinity, -1, 0, 0.5, 1.5, max + 1, 2 ** 53];
      bad.push('1000', null, true, {});
      for (const value of bad) {
        const error = thrown(option, value);
        expect(error, `${option} = ${String(value)}`).toBeInstanceOf(BerthError);
        expect((error as BerthError).code).toBe('invalid_input');
        expect((error as BerthError).message).toContain(option);
        expect((error as BerthError).details).toEqual({ option, min: 1, max });
      }
    });

    it(`takes ${option} = 1 and = ${max}, and none at all`, () => {
      expect(thrown(option, 1)).toBeUndefined();
      expect(thrown(option, max)).toBeUndefined();
      expect(thrown(option, undefined)).toBeUndefined();
    });
  }
});
