import type { Kysely } from 'kysely';
import type { ChatMessage } from '../../../ports/model-client.js';
import type { Database } from './database.js';

/**
 * Attempts' model conversations (migration 0008): one row per attempt, the messages as JSON
 * text, replaced on every store. Portable upsert (`ON CONFLICT … DO UPDATE`) for SQLite and
 * PostgreSQL alike.
 */
export class ConversationTable {
  constructor(private readonly db: Kysely<Database>) {}

  async put(attemptId: string, messages: readonly ChatMessage[], now: string): Promise<void> {
    const text = JSON.stringify(messages);
    await this.db
      .insertInto('attempt_conversations')
      .values({ attempt_id: attemptId, messages: text, updated_at: now })
      .onConflict((oc) => oc.column('attempt_id').doUpdateSet({ messages: text, updated_at: now }))
      .execute();
  }

  async get(attemptId: string): Promise<ChatMessage[] | undefined> {
    const row = await this.db
      .selectFrom('attempt_conversations')
      .select('messages')
      .where('attempt_id', '=', attemptId)
      .executeTakeFirst();
    return row ? (JSON.parse(row.messages) as ChatMessage[]) : undefined;
  }
}
