import type { App } from '@slack/bolt';
import type { Logger } from '../../util/logger.js';
import { isSignedBySlack } from './slack-request-verifier.js';

/**
 * POST /v1/integrations/slack/events: the Events API and the interactivity endpoint on Berth's
 * own server. The raw body is read (at most 1 MiB) and its signature checked before anything
 * else (401 and nothing runs otherwise); then `url_verification` is answered, and events and
 * interactive payloads go to the Bolt app, answering Slack as soon as the app acknowledges them
 * (within Slack's 3 seconds: events are acknowledged before any listener runs).
 */

export const SLACK_EVENTS_PATH = '/v1/integrations/slack/events';
const MAX_BODY_BYTES = 1024 * 1024;
/** Answer Slack by then even if no listener acknowledged (Slack gives up at 3 s). */
const ACK_DEADLINE_MS = 2500;

async function readLimited(request: Request): Promise<string | undefined> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > MAX_BODY_BYTES) return undefined;
  if (!request.body) return '';
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

function parseBody(contentType: string, raw: string): Record<string, unknown> | undefined {
  try {
    if (contentType.startsWith('application/x-www-form-urlencoded')) {
      const payload = new URLSearchParams(raw).get('payload');
      return payload !== null ? (JSON.parse(payload) as Record<string, unknown>) : undefined;
    }
    const parsed: unknown = JSON.parse(raw);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export function slackEventsHandler(options: {
  app: App;
  signingSecret: string;
  logger: Logger;
}): (request: Request) => Promise<Response> {
  const { app, signingSecret, logger } = options;
  return async (request) => {
    const raw = await readLimited(request);
    if (raw === undefined) return json({ ok: false, error: 'body_too_large' }, 413);
    const signed = isSignedBySlack(
      signingSecret,
      {
        signature: request.headers.get('x-slack-signature'),
        timestamp: request.headers.get('x-slack-request-timestamp'),
      },
      raw,
    );
    if (!signed) {
      logger.warn('a Slack request without a valid signature was refused');
      return json({ ok: false, error: 'invalid_signature' }, 401);
    }
    const body = parseBody(request.headers.get('content-type') ?? '', raw);
    if (!body) return json({ ok: false, error: 'invalid_body' }, 400);
    if (body.type === 'url_verification' && typeof body.challenge === 'string')
      return json({ challenge: body.challenge });

    const retry = request.headers.get('x-slack-retry-num');
    return new Promise<Response>((resolve) => {
      let answered = false;
      const answer = (response: Response) => {
        if (answered) return;
        answered = true;
        clearTimeout(deadline);
        resolve(response);
      };
      const deadline = setTimeout(
        () => answer(new Response(null, { status: 200 })),
        ACK_DEADLINE_MS,
      );
      app
        .processEvent({
          body,
          ...(retry !== null && /^[0-9]+$/.test(retry) ? { retryNum: Number(retry) } : {}),
          ...(request.headers.get('x-slack-retry-reason') !== null
            ? { retryReason: request.headers.get('x-slack-retry-reason') ?? '' }
            : {}),
          ack: (response?: unknown) => {
            answer(
              response === undefined || response === ''
                ? new Response(null, { status: 200 })
                : typeof response === 'string'
                  ? new Response(response, { status: 200 })
                  : json(response),
            );
            return Promise.resolve();
          },
        })
        .catch((error: unknown) => {
          logger.warn(
            { err: error instanceof Error ? error.message : String(error) },
            'a Slack event failed',
          );
        })
        // Nothing acknowledged it (an event type Berth does not handle): 200, ignored.
        .finally(() => answer(new Response(null, { status: 200 })));
    });
  };
}
