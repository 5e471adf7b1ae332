import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import {
  IDLE_MS,
  MAX_AGE_MS,
  MAX_SESSIONS_PER_TOKEN,
  SIGN_INS_PER_MINUTE,
  WebSessions,
  hashSessionId,
} from '../../src/server/web-sessions.js';

/** The session table's rules, on a real SQLite store and a clock the test moves. */

describe('WebSessions', () => {
  let dir: string;
  let store: SqliteStore;
  let now: number;
  const tokens = ['tok_a', 'tok_b', 'tok_other', 'tok_flood'];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-sessions-'));
    store = SqliteStore.open(dir);
    await store.migrate();
    for (const id of tokens)
      await store.createToken({
        id,
        name: id,
        hash: `hash-${id}`,
        admin: false,
        now: '2026-01-01T00:00:00.000Z',
      });
    now = Date.parse('2026-01-01T00:00:00.000Z');
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const sessionsOn = () => new WebSessions(store, { now: () => now });

  it('ends a session unused for longer than IDLE_MS, and any session older than MAX_AGE_MS', async () => {
    const sessions = sessionsOn();
    const idle = await sessions.create('tok_a');
    now += IDLE_MS - 1;
    expect((await sessions.use(idle.id))?.tokenId).toBe('tok_a');
    now += IDLE_MS + 1;
    expect(await sessions.use(idle.id)).toBeUndefined();
    // Gone for good, even if the clock went back.
    now -= IDLE_MS;
    expect(await sessions.use(idle.id)).toBeUndefined();
    expect(await store.getWebSession(hashSessionId(idle.id))).toBeUndefined();

    const busy = await sessions.create('tok_b');
    const started = now;
    while (now + IDLE_MS / 2 < started + MAX_AGE_MS) {
      now += IDLE_MS / 2;
      expect(await sessions.use(busy.id)).toBeDefined();
    }
    // Used within the last IDLE_MS / 2, but older than MAX_AGE_MS.
    now = started + MAX_AGE_MS + 1;
    expect(await sessions.use(busy.id)).toBeUndefined();
  });

  it('keeps only the hash of the session id; a new WebSessions on the same store (a restart) knows the session', async () => {
    const session = await sessionsOn().create('tok_a');
    const stored = await store.getWebSession(hashSessionId(session.id));
    expect(stored).toMatchObject({ tokenId: 'tok_a', idHash: hashSessionId(session.id) });
    expect(JSON.stringify(stored)).not.toContain(session.id);
    expect(JSON.stringify(stored)).not.toContain(session.csrfToken);
    const restarted = sessionsOn();
    const again = await restarted.use(session.id);
    expect(again).toMatchObject({ tokenId: 'tok_a', csrfToken: session.csrfToken });
  });

  it('gives every session its own random id and CSRF token, compared exactly', async () => {
    const sessions = sessionsOn();
    const a = await sessions.create('tok_a');
    const b = await sessions.create('tok_a');
    expect(a.id).not.toBe(b.id);
    expect(a.csrfToken).not.toBe(b.csrfToken);
    expect(a.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sessions.csrfMatches(a, a.csrfToken)).toBe(true);
    expect(sessions.csrfMatches(a, b.csrfToken)).toBe(false);
    expect(sessions.csrfMatches(a, undefined)).toBe(false);
    expect(sessions.csrfMatches(a, a.csrfToken.slice(0, -1))).toBe(false);
    expect(sessions.csrfMatches(a, `${a.csrfToken}x`)).toBe(false);
    await sessions.end(a.id);
    expect(await sessions.use(a.id)).toBeUndefined();
    expect(await sessions.use(b.id)).toBeDefined();
  });

  it("keeps at most MAX_SESSIONS_PER_TOKEN per token, ending that token's oldest, never another's", async () => {
    const sessions = sessionsOn();
    const other = await sessions.create('tok_other');
    const mine = [];
    for (let i = 0; i < MAX_SESSIONS_PER_TOKEN + 5; i++) {
      now += 1;
      mine.push(await sessions.create('tok_flood'));
    }
    expect((await sessions.use(other.id))?.tokenId).toBe('tok_other');
    for (const s of mine.slice(0, 5)) expect(await sessions.use(s.id)).toBeUndefined();
    for (const s of mine.slice(5)) expect(await sessions.use(s.id)).toBeDefined();
    // Ending sessions frees their places.
    for (const s of mine.slice(5)) await sessions.end(s.id);
    const again = await sessions.create('tok_flood');
    expect(await sessions.use(again.id)).toBeDefined();
  });

  it("revoking a token deletes its sessions' rows, not another token's", async () => {
    const sessions = sessionsOn();
    const a = await sessions.create('tok_a');
    const b = await sessions.create('tok_b');
    await store.revokeToken('tok_a', new Date(now).toISOString());
    expect(await store.getWebSession(hashSessionId(a.id))).toBeUndefined();
    expect(await store.getWebSession(hashSessionId(b.id))).toBeDefined();
  });

  it('limits sign-ins per token and per address in any one minute', () => {
    const sessions = sessionsOn();
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
