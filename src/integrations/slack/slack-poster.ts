import type { webApi } from '@slack/bolt';
import type { Logger } from '../../util/logger.js';
import type { SlackMessage } from './slack-messages.js';

/**
 * Berth's side of Slack's Web API: posting in a thread, editing a message, an ephemeral reply.
 * The WebClient (slack-integration.ts) honours `429 Retry-After` and retries failures a bounded
 * number of times within a bounded time; what still fails is logged as undelivered and never
 * thrown at the caller, so a task's result never depends on Slack being reachable.
 */
export class SlackPoster {
  constructor(
    private readonly client: webApi.WebClient,
    private readonly logger: Logger,
  ) {}

  private undelivered(method: string, fields: Record<string, unknown>, error: unknown): void {
    this.logger.warn(
      { method, ...fields, err: error instanceof Error ? error.message : String(error) },
      'slack reply undelivered',
    );
  }

  /** Posts in the thread `threadTs`; the new message's ts, or undefined when undelivered. */
  async post(
    channel: string,
    threadTs: string,
    message: SlackMessage,
    fields: Record<string, unknown> = {},
  ): Promise<string | undefined> {
    try {
      const answer = await this.client.chat.postMessage({
        channel,
        thread_ts: threadTs,
        text: message.text,
        ...(message.blocks ? { blocks: message.blocks } : {}),
        unfurl_links: false,
        unfurl_media: false,
      });
      return typeof answer.ts === 'string' ? answer.ts : undefined;
    } catch (error) {
      this.undelivered('chat.postMessage', { channel, ...fields }, error);
      return undefined;
    }
  }

  async update(
    channel: string,
    ts: string,
    message: SlackMessage,
    fields: Record<string, unknown> = {},
  ): Promise<boolean> {
    try {
      await this.client.chat.update({
        channel,
        ts,
        text: message.text,
        ...(message.blocks ? { blocks: message.blocks } : {}),
      });
      return true;
    } catch (error) {
      this.undelivered('chat.update', { channel, ...fields }, error);
      return false;
    }
  }

  async ephemeral(channel: string, user: string, threadTs: string, text: string): Promise<void> {
    try {
      await this.client.chat.postEphemeral({ channel, user, thread_ts: threadTs, text });
    } catch (error) {
      this.undelivered('chat.postEphemeral', { channel }, error);
    }
  }
}
