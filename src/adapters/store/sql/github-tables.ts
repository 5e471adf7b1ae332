import type { Kysely } from 'kysely';
import type { Database } from './database.js';

/**
 * The GitHub integration's table (migration 0016_github): the `X-GitHub-Delivery` ids of the
 * webhook deliveries already taken (and the comments their bodies name, see pruneDeliveries), so a redelivery (GitHub's "Redeliver", or a retry after a
 * timeout) starts nothing again, across restarts and across servers on one PostgreSQL. Taking an
 * id is one insert that does nothing when the row exists: atomic on SQLite and PostgreSQL alike.
 */
export class GitHubTables {
  constructor(private readonly db: Kysely<Database>) {}

  /** True when this call took the delivery (it was not seen before). */
  async claimDelivery(deliveryId: string, event: string, now: string): Promise<boolean> {
    const inserted = await this.db
      .insertInto('github_deliveries')
      .values({ delivery_id: deliveryId, event, received_at: now })
      .onConflict((oc) => oc.column('delivery_id').doNothing())
      .executeTakeFirst();
    return Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  /**
   * Drops the delivery ids received before `before` (GitHub redelivers for a few days only).
   * Keys with a `:` are not delivery ids (those are letters, digits and `-`) but what a signed
   * body names (github-webhook.ts `commentKey`): kept for good, since that body stays valid and
   * could be sent again under a new id at any time. One short row per comment taken.
   */
  async pruneDeliveries(before: string): Promise<number> {
    const deleted = await this.db
      .deleteFrom('github_deliveries')
      .where('received_at', '<', before)
      .where('delivery_id', 'not like', '%:%')
      .executeTakeFirst();
    return Number(deleted.numDeletedRows);
  }
}
