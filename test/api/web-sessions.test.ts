import { describe, expect, it } from 'vitest';
import {
  IDLE_MS,
  MAX_AGE_MS,
  MAX_SESSIONS_PER_TOKEN,
  SIGN_INS_PER_MINUTE,
  WebSessions,
} from '../../src/server/web-sessions.js';

/** The session table's expiry rules, on a clock the test moves. */

describe('WebSessions', () => {
  it('ends a session unused for longer than IDLE_MS, and any session older than MAX_AGE_MS', () => {
    let now = 1_000_000;
    const sessions = new WebSessions(() => now);
    const idle = sessions.create('berth_a');
    now += IDLE_MS - 1;
    expect(sessions.use(idle.id)?.token).toBe('berth_a');
    now += IDLE_MS + 1;
    expect(sessions.use(idle.id)).toBeUndefined();
    // Gone for good, even if the clock went back.
    now -= IDLE_MS;
    expect(sessions.use(idle.id)).toBeUndefined();

    const busy = sessions.create('berth_b');
    const started = now;
    while (now + IDLE_MS / 2 < started + MAX_AGE_MS) {
      now += IDLE_MS / 2;
      expect(sessions.use(busy.id)).toBeDefined();
    }
    // Used within the last IDLE_MS / 2, but older than MAX_AGE_MS.
    now = started + MAX_AGE_MS + 1;
    expect(sessions.use(busy.id)).toBeUndefined();
  });

  it('gives every session its own random id and CSRF token, compared exactly', () => {
    const sessions = new WebSessions();
    const a = sessions.create('berth_a');
    const b = sessions.create('berth_a');
    expect(a.id).not.toBe(b.id);
    expect(a.csrfToken).not.toBe(b.csrfToken);
    expect(a.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sessions.csrfMatches(a, a.csrfToken)).toBe(true);
    expect(sessions.csrfMatches(a, b.csrfToken)).toBe(false);
    expect(sessions.csrfMatches(a, undefined)).toBe(false);
    expect(sessions.csrfMatches(a, a.csrfToken.slice(0, -1))).toBe(false);
    expect(sessions.csrfMatches(a, `${a.csrfToken}x`)).toBe(false);
    sessions.end(a.id);
    expect(sessions.use(a.id)).toBeUndefined();
    expect(sessions.use(b.id)).toBeDefined();
  });

  it("keeps at most MAX_SESSIONS_PER_TOKEN per token, ending that token's oldest, never another's", () => {
    const sessions = new WebSessions();
    const other = sessions.create('berth_other');
    const mine = Array.from({ length: MAX_SESSIONS_PER_TOKEN + 5 }, () =>
      sessions.create('berth_flood'),
    );
    expect(sessions.use(other.id)?.token).toBe('berth_other');
    expect(mine.slice(0, 5).map((s) => sessions.use(s.id))).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect(mine.slice(5).every((s) => sessions.use(s.id) !== undefined)).toBe(true);
    // Ending sessions frees their places.
    for (const s of mine.slice(5)) sessions.end(s.id);
    const again = sessions.create('berth_flood');
    expect(sessions.use(again.id)).toBeDefined();
  });

  it('limits sign-ins per token and per address in any one minute', () => {
    let now = 0;
    const sessions = new WebSessions(() => now);
    for (let i = 0; i < SIGN_INS_PER_MINUTE.token; i++)
      sessions.countSignIn('berth_a', `10.0.0.${i}`);
    expect(() => sessions.countSignIn('berth_a', '10.0.0.99')).toThrow(/too many sign-ins/);
    for (let i = 0; i < SIGN_INS_PER_MINUTE.address; i++)
      sessions.countSignIn(`berth_x${i}`, '10.9.9.9');
    expect(() => sessions.countSignIn('berth_new', '10.9.9.9')).toThrow(/too many sign-ins/);
    now += 60_000;
    expect(() => sessions.countSignIn('berth_a', '10.9.9.9')).not.toThrow();
  });
});
