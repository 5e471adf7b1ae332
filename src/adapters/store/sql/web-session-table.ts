import type { Kysely } from 'kysely';
import type { StoredWebSession } from '../../../ports/store.js';
import type { Database } from './database.js';

/**
 * The web UI's sign-in sessions (migration 0014): one row per session, keyed by the SHA-256 of
 * its id (the cookie's value is never stored). Portable queries for SQLite and PostgreSQL alike.
 */
export class WebSessionTable {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Stores a session and, in the same transaction, drops the token's oldest sessions beyond
   * `keepPerToken` (another token's sessions are never touched).
   */
  async create(session: StoredWebSession, keepPerToken: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('web_sessions')
        .values({
          id_hash: session.idHash,
          token_id: session.tokenId,
          created_at: session.createdAt,
          used_at: session.usedAt,
          expires_at: session.expiresAt,
        })
        .execute();
      const kept = await trx
        .selectFrom('web_sessions')
        .select('id_hash')
        .where('token_id', '=', session.tokenId)
        .orderBy('created_at', 'desc')
        .orderBy('id_hash')
        .limit(keepPerToken)
        .execute();
      await trx
        .deleteFrom('web_sessions')
        .where('token_id', '=', session.tokenId)
        .where(
          'id_hash',
          'not in',
          kept.map((row) => row.id_hash),
        )
        .execute();
    });
  }

  async get(idHash: string): Promise<StoredWebSession | undefined> {
    const row = await this.db
      .selectFrom('web_sessions')
      .selectAll()
      .where('id_hash', '=', idHash)
      .executeTakeFirst();
    return row
      ? {
          idHash: row.id_hash,
          tokenId: row.token_id,
          createdAt: row.created_at,
          usedAt: row.used_at,
          expiresAt: row.expires_at,
        }
      : undefined;
  }

  async touch(idHash: string, usedAt: string): Promise<void> {
    await this.db
      .updateTable('web_sessions')
      .set({ used_at: usedAt })
      .where('id_hash', '=', idHash)
      .execute();
  }

  async delete(idHash: string): Promise<void> {
    await this.db.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
  }

  async deleteExpired(now: string, usedBefore: string): Promise<number> {
    const result = await this.db
      .deleteFrom('web_sessions')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('used_at', '<', usedBefore)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
