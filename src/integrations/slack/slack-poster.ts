import { setTimeout as sleep } from 'node:timers/promises';
import { webApi } from '@slack/bolt';
import type { Logger } from '../../util/logger.js';
import type { SlackMessage } from './slack-messages.js';

/**
 * Berth's side of Slack's Web API: posting in a thread, editing a message, an ephemeral reply.
 * The WebClient (slack-integration.ts) retries network errors and 5xx a bounded number of times
 * within a bounded time, and fails a `429` at once (`rejectRateLimitedCalls`): here that call,
 * and only it, waits min(Retry-After, `waitMaxMs`) and is tried again, at most `tries` times in
 * all, while every other call goes on. What still fails is logged as undelivered and never
 * thrown at the caller, so a task's result never depends on Slack being reachable.
 */
export interface RateLimitPolicy {
  /** Tries of one call answered 429, in all. */
  tries: number;
  /** The longest wait for one Retry-After (ms). */
  waitMaxMs: number;
}

/** The seconds a 429 asked to wait, or undefined for any other failure. */
function retryAfterOf(error: unknown): number | undefined {
  const e = error as { code?: unknown; retryAfter?: unknown } | null;
  return e?.code === webApi.ErrorCode.RateLimitedError && typeof e.retryAfter === 'number'
    ? e.retryAfter
    : undefined;
}

export class SlackPoster {
  constructor(
    private readonly client: webApi.WebClient,
    private readonly logger: Logger,
    private readonly rateLimit: RateLimitPolicy = { tries: 3, waitMaxMs: 30_000 },
  ) {}

  /** `call`, tried again after a 429 (capped wait, bounded tries); other failures thrown. */
  private async limited<T>(call: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await call();
      } catch (error) {
        const retryAfter = retryAfterOf(error);
        if (retryAfter === undefined || tries >= this.rateLimit.tries) throw error;
        await sleep(Math.min(Math.max(0, retryAfter) * 1000, this.rateLimit.waitMaxMs));
      }
    }
  }

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
      const answer = await this.limited(() =>
        this.client.chat.postMessage({
          channel,
          thread_ts: threadTs,
          text: message.text,
          ...(message.blocks ? { blocks: message.blocks } : {}),
          unfurl_links: false,
          unfurl_media: false,
        }),
      );
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
      await this.limited(() =>
        this.client.chat.update({
          channel,
          ts,
          text: message.text,
          ...(message.blocks ? { blocks: message.blocks } : {}),
        }),
      );
      return true;
    } catch (error) {
      this.undelivered('chat.update', { channel, ...fields }, error);
      return false;
    }
  }

  async ephemeral(channel: string, user: string, threadTs: string, text: string): Promise<void> {
    try {
      await this.limited(() =>
        this.client.chat.postEphemeral({ channel, user, thread_ts: threadTs, text }),
      );
    } catch (error) {
      this.undelivered('chat.postEphemeral', { channel }, error);
    }
  }
}
