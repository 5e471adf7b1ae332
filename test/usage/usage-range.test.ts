import { describe, expect, it } from 'vitest';
import { parseInstant, parseSince } from '../../src/usage/usage-range.js';

/** `berth usage --since` and the usage route's from/to: the forms taken and the refusals. */

const NOW = new Date('2026-12-08T12:00:00.000Z');

describe('usage ranges', () => {
  it('takes durations back from now, UTC dates and ISO-8601 times with a zone', () => {
    expect(parseSince('7d', NOW).toISOString()).toBe('2026-12-01T12:00:00.000Z');
    expect(parseSince('24h', NOW).toISOString()).toBe('2026-12-07T12:00:00.000Z');
    expect(parseSince('30m', NOW).toISOString()).toBe('2026-12-08T11:30:00.000Z');
    expect(parseSince('2w', NOW).toISOString()).toBe('2026-11-24T12:00:00.000Z');
    expect(parseSince('2026-12-01', NOW).toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(parseSince('2026-12-01T09:30:00+02:00', NOW).toISOString()).toBe(
      '2026-12-01T07:30:00.000Z',
    );
    expect(parseInstant('2026-12-01T09:30:00.123Z')?.toISOString()).toBe(
      '2026-12-01T09:30:00.123Z',
    );
  });

  it('refuses anything else, naming the accepted forms', () => {
    for (const bad of [
      'yesterday-ish',
      '',
      '7',
      '0d',
      '-7d',
      '7 days',
      '7D',
      '1y',
      '2026-02-30',
      '2026-13-01',
      '2026-12-01T09:30:00', // no zone: which day it is depends on the machine
      '1e3d',
    ]) {
      expect(() => parseSince(bad, NOW), bad).toThrow(
        expect.objectContaining({
          code: 'invalid_input',
          message: expect.stringContaining('30m, 24h, 7d, 2w') as unknown,
        }) as Error,
      );
    }
  });
});
