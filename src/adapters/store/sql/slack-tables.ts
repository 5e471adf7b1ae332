import type { Kysely } from 'kysely';
import type { SlackThread, SlackTurn } from '../../../ports/store.js';
import type { Database } from './database.js';

/**
 * The Slack integration's tables (migration 0015_slack), portable across SQLite and PostgreSQL:
 * the event ids already handled (Slack retries an event with the same `event_id`; a second
 * delivery, even after a restart, must start nothing), the Slack users linked to tokens, and the
 * threads that carry a task (for follow-ups and for editing the progress reply), and each turn
 * Berth follows in a thread until its final message is posted (migration 0015_slack_turns), so
 * a restarted server finishes the conversations the stopped one had open.
 */

export interface SlackEventsTable {
  event_id: string;
  received_at: string;
}

export interface SlackUsersTable {
  slack_user_id: string;
  token_id: string;
  created_at: string;
}

export interface SlackThreadsTable {
  channel: string;
  thread_ts: string;
  task_id: string;
  reply_ts: string | null;
  slack_user_id: string;
  created_at: string;
}

export interface SlackTurnsTable {
  id: string;
  channel: string;
  thread_ts: string;
  reply_ts: string | null;
  task_id: string;
  /** JSON array of the turn's attempt ids (a follow-up), or null: all of the task's. */
  attempt_ids: string | null;
  slack_user_id: string;
  created_at: string;
  /** When its final message was posted (or given up on); null while it is followed. */
  finished_at: string | null;
}

export class SlackTables {
  constructor(private readonly db: Kysely<Database>) {}

  /** True for the first claim of `eventId`, false for every later one (atomic: a primary key). */
  async claimEvent(eventId: string, now: string): Promise<boolean> {
    const result = await this.db
      .insertInto('slack_events')
      .values({ event_id: eventId, received_at: now })
      .onConflict((oc) => oc.column('event_id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  /** Forgets event ids received before `before` (Slack stops retrying after about an hour). */
  async pruneEvents(before: string): Promise<number> {
    const result = await this.db
      .deleteFrom('slack_events')
      .where('received_at', '<', before)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Links a Slack user to a token, replacing an earlier link of that user. */
  async linkUser(slackUserId: string, tokenId: string, now: string): Promise<void> {
    await this.db
      .insertInto('slack_users')
      .values({ slack_user_id: slackUserId, token_id: tokenId, created_at: now })
      .onConflict((oc) =>
        oc.column('slack_user_id').doUpdateSet({ token_id: tokenId, created_at: now }),
      )
      .execute();
  }

  /** The id of the token a Slack user is linked to, or undefined. */
  async userTokenId(slackUserId: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('slack_users')
      .select('token_id')
      .where('slack_user_id', '=', slackUserId)
      .executeTakeFirst();
    return row?.token_id;
  }

  async putThread(thread: SlackThread): Promise<void> {
    const values = {
      channel: thread.channel,
      thread_ts: thread.threadTs,
      task_id: thread.taskId,
      reply_ts: thread.replyTs,
      slack_user_id: thread.slackUserId,
      created_at: thread.createdAt,
    };
    await this.db
      .insertInto('slack_threads')
      .values(values)
      .onConflict((oc) =>
        oc
          .columns(['channel', 'thread_ts'])
          .doUpdateSet({ task_id: values.task_id, reply_ts: values.reply_ts }),
      )
      .execute();
  }

  async getThread(channel: string, threadTs: string): Promise<SlackThread | undefined> {
    const row = await this.db
      .selectFrom('slack_threads')
      .selectAll()
      .where('channel', '=', channel)
      .where('thread_ts', '=', threadTs)
      .executeTakeFirst();
    return row
      ? {
          channel: row.channel,
          threadTs: row.thread_ts,
          taskId: row.task_id,
          replyTs: row.reply_ts,
          slackUserId: row.slack_user_id,
          createdAt: row.created_at,
        }
      : undefined;
  }

  async putTurn(turn: SlackTurn): Promise<void> {
    await this.db
      .insertInto('slack_turns')
      .values({
        id: turn.id,
        channel: turn.channel,
        thread_ts: turn.threadTs,
        reply_ts: turn.replyTs,
        task_id: turn.taskId,
        attempt_ids: turn.attemptIds ? JSON.stringify(turn.attemptIds) : null,
        slack_user_id: turn.slackUserId,
        created_at: turn.createdAt,
        finished_at: null,
      })
      .execute();
  }

  async finishTurn(id: string, now: string): Promise<void> {
    await this.db
      .updateTable('slack_turns')
      .set({ finished_at: now })
      .where('id', '=', id)
      .execute();
  }

  /** Turns whose final message was not posted yet, oldest first. */
  async openTurns(): Promise<SlackTurn[]> {
    const rows = await this.db
      .selectFrom('slack_turns')
      .selectAll()
      .where('finished_at', 'is', null)
      .orderBy('created_at')
      .execute();
    return rows.map((row) => ({
      id: row.id,
      channel: row.channel,
      threadTs: row.thread_ts,
      replyTs: row.reply_ts,
      taskId: row.task_id,
      attemptIds: row.attempt_ids !== null ? (JSON.parse(row.attempt_ids) as string[]) : null,
      slackUserId: row.slack_user_id,
      createdAt: row.created_at,
    }));
  }
}
