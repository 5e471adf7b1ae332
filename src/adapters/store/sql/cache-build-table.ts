import type { Kysely, Selectable } from 'kysely';
import type {
  CacheBuildClaim,
  CacheBuildRequest,
} from '../../../domain/cache/cache-build-claim.js';
import type { CacheBuildsTable, Database } from './database.js';

/**
 * The `cache_builds` table: who builds a missing cache entry, shared by every orchestrator on the
 * store. A claim is one statement each way, so it is atomic on SQLite and PostgreSQL alike: an
 * insert that does nothing when a row exists, else a conditional update that takes the row only
 * when its lease ran out (or is the caller's already). Times are ISO-8601 UTC text (they order
 * as text).
 */

function toClaim(row: Selectable<CacheBuildsTable>): CacheBuildClaim {
  return {
    environmentId: row.environment_id,
    key: row.key,
    owner: row.owner,
    claimedAt: row.claimed_at,
    expiresAt: row.expires_at,
  };
}

export class CacheBuildTable {
  constructor(private readonly db: Kysely<Database>) {}

  async claim(request: CacheBuildRequest): Promise<boolean> {
    const expires = new Date(Date.parse(request.now) + request.leaseMs).toISOString();
    const inserted = await this.db
      .insertInto('cache_builds')
      .values({
        environment_id: request.environmentId,
        key: request.key,
        owner: request.owner,
        claimed_at: request.now,
        expires_at: expires,
      })
      .onConflict((oc) => oc.columns(['environment_id', 'key']).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return true;
    const taken = await this.db
      .updateTable('cache_builds')
      .set({ owner: request.owner, claimed_at: request.now, expires_at: expires })
      .where('environment_id', '=', request.environmentId)
      .where('key', '=', request.key)
      .where((eb) => eb.or([eb('expires_at', '<=', request.now), eb('owner', '=', request.owner)]))
      .executeTakeFirst();
    return Number(taken.numUpdatedRows) === 1;
  }

  async renew(request: CacheBuildRequest): Promise<boolean> {
    const result = await this.db
      .updateTable('cache_builds')
      .set({ expires_at: new Date(Date.parse(request.now) + request.leaseMs).toISOString() })
      .where('environment_id', '=', request.environmentId)
      .where('key', '=', request.key)
      .where('owner', '=', request.owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async release(environmentId: string, key: string, owner: string): Promise<void> {
    await this.db
      .deleteFrom('cache_builds')
      .where('environment_id', '=', environmentId)
      .where('key', '=', key)
      .where('owner', '=', owner)
      .execute();
  }

  async deleteExpired(now: string): Promise<number> {
    const result = await this.db
      .deleteFrom('cache_builds')
      .where('expires_at', '<', now)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async get(environmentId: string, key: string): Promise<CacheBuildClaim | undefined> {
    const row = await this.db
      .selectFrom('cache_builds')
      .selectAll()
      .where('environment_id', '=', environmentId)
      .where('key', '=', key)
      .executeTakeFirst();
    return row ? toClaim(row) : undefined;
  }
}
