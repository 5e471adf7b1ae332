import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store, StoredWebSession } from '../../src/ports/store.js';
import { describeEachStore } from './each-store.js';

/** The web sessions table (migration 0014) on each store: SQLite and a real PostgreSQL. */

const T0 = '2026-01-01T00:00:00.000Z';

function session(idHash: string, tokenId: string, minute: number): StoredWebSession {
  const at = new Date(Date.parse(T0) + minute * 60_000).toISOString();
  return { idHash, tokenId, createdAt: at, usedAt: at, expiresAt: '2026-01-08T00:00:00.000Z' };
}

describeEachStore('web sessions', (adapter, open) => {
  describe(`web sessions: ${adapter}`, () => {
    let store: Store;
    let cleanup: () => void;
    beforeEach(async () => {
      ({ store, cleanup } = await open());
      await store.migrate();
      for (const id of ['tok_a', 'tok_b'])
        await store.createToken({ id, name: id, hash: `h-${id}`, admin: false, now: T0 });
    });
    afterEach(async () => {
      await store.close();
      cleanup();
    });

    it("stores, touches and deletes a session; keeps a token's newest; revoking its token deletes its rows only", async () => {
      await store.createWebSession(session('h1', 'tok_a', 0), 2);
      await store.createWebSession(session('h2', 'tok_a', 1), 2);
      await store.createWebSession(session('hb', 'tok_b', 1), 2);
      await store.createWebSession(session('h3', 'tok_a', 2), 2);
      expect(await store.getWebSession('h1')).toBeUndefined();
      expect(await store.getWebSession('h2')).toMatchObject({ tokenId: 'tok_a' });
      expect(await store.getWebSession('hb')).toMatchObject({ tokenId: 'tok_b' });
      await store.touchWebSession('h2', '2026-01-01T05:00:00.000Z');
      expect((await store.getWebSession('h2'))?.usedAt).toBe('2026-01-01T05:00:00.000Z');
      expect(await store.deleteExpiredWebSessions(T0, '2026-01-01T04:00:00.000Z')).toBe(2);
      expect(await store.getWebSession('h2')).toBeDefined();
      await store.createWebSession(session('h4', 'tok_a', 3), 5);
      await store.revokeToken('tok_a', T0);
      expect(await store.getWebSession('h2')).toBeUndefined();
      expect(await store.getWebSession('h4')).toBeUndefined();
      await store.createWebSession(session('hb2', 'tok_b', 3), 5);
      await store.deleteWebSession('hb2');
      expect(await store.getWebSession('hb2')).toBeUndefined();
    });
  });
});
