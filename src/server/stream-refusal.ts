import type { SSEStreamingApi } from 'hono/streaming';
import { BerthError } from '../errors/berth-error.js';
import type { Logger } from '../util/logger.js';

/**
 * The last event of a server-sent event stream that failed after its status line was sent:
 * `refused` ({ code, message, details, requestId }; not `error`, an attempt's own type). A
 * BerthError (other than `internal`) travels as it is; anything else is logged and sent as
 * `internal` with the fixed `fallbackMessage`, so no internal detail reaches the caller.
 */
export async function sendStreamRefusal(
  stream: SSEStreamingApi,
  error: unknown,
  options: {
    open: boolean;
    requestId: string | undefined;
    logger: Logger | undefined;
    logMessage: string;
    fallbackMessage: string;
  },
): Promise<void> {
  const { open, requestId, logger } = options;
  if (!(error instanceof BerthError) || error.code === 'internal')
    logger?.error({ requestId, err: error }, options.logMessage);
  const refusal =
    error instanceof BerthError && error.code !== 'internal'
      ? error
      : new BerthError('internal', options.fallbackMessage);
  if (open)
    await stream
      .writeSSE({
        event: 'refused',
        data: JSON.stringify({
          code: refusal.code,
          message: refusal.message,
          details: refusal.details,
          requestId,
        }),
      })
      .catch(() => undefined);
}
