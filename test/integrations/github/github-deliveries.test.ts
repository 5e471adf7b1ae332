import { describe, expect, it } from 'vitest';
import { describeEachStore } from '../../store/each-store.js';

/**
 * Webhook deliveries are taken once by their X-GitHub-Delivery id (migration 0016_github), on
 * SQLite and PostgreSQL: a redelivery is refused, ids taken at the same moment go to one caller,
 * and old ids are pruned (what a body names, `comment:…`, never).
 */
describeEachStore('GitHub deliveries', (adapter, open) => {
  describe(`${adapter}: GitHub deliveries`, () => {
    it('takes an id once, even when asked at the same moment, and prunes old ones', async () => {
      const { store, cleanup } = await open();
      try {
        await store.migrate();
        const t0 = '2026-01-01T00:00:00.000Z';
        expect(await store.claimGitHubDelivery('d-1', 'issue_comment', t0)).toBe(true);
        expect(await store.claimGitHubDelivery('d-1', 'issue_comment', t0)).toBe(false);
        const raced = await Promise.all(
          Array.from({ length: 8 }, () =>
            store.claimGitHubDelivery('d-2', 'issue_comment', '2026-01-03T00:00:00.000Z'),
          ),
        );
        expect(raced.filter(Boolean)).toHaveLength(1);
        expect(await store.pruneGitHubDeliveries('2026-01-02T00:00:00.000Z')).toBe(1);
        expect(await store.claimGitHubDelivery('d-1', 'issue_comment', t0)).toBe(true);
        expect(await store.claimGitHubDelivery('d-2', 'issue_comment', t0)).toBe(false);
        // What a signed body names (github-webhook.ts commentKey) is never pruned: the body
        // could be sent again under a new delivery id at any time.
        const comment = 'comment:issue_comment:created:acme/app:42';
        expect(await store.claimGitHubDelivery(comment, 'issue_comment', t0)).toBe(true);
        expect(await store.pruneGitHubDeliveries('2027-01-01T00:00:00.000Z')).toBe(2);
        expect(await store.claimGitHubDelivery(comment, 'issue_comment', t0)).toBe(false);
      } finally {
        await store.close();
        cleanup();
      }
    });
  });
});
