import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { BerthError } from '../errors/berth-error.js';
import { taskList, taskSummary as taskSummarySchema } from './api-schemas.js';
import { sendStreamRefusal } from './stream-refusal.js';
import type { RouteDefinition, TaskRouteDeps } from './route-table.js';
import { taskSummary } from './task-views.js';

/**
 * The task list's live changes (`GET /v1/tasks/events`, server-sent events), which `/tasks` in
 * the web UI follows instead of polling: first a `task` event for each task of the list, then a
 * `task` event whenever one is new or changed (its status, an attempt's phase, counts), and a
 * `hidden` event ({ id }) when one leaves the list.
 *
 * Threat model. Untrusted: the caller (a member may try to learn of other environments' tasks)
 * and the stream's lifetime (the token may be revoked, or the caller removed from an
 * environment, while it is open). Guarantees: each round authenticates the request again (a
 * revoked token or session ends the stream with a `refused` event) and lists the tasks through
 * TaskService.list with that caller, the very read GET /v1/tasks makes, so the stream carries
 * exactly what the list would show at that moment and nothing else: a task of an environment the
 * caller no longer sees is sent as `hidden` (its id only, which the caller had already seen).
 * The summaries carry no diffs, outputs or file lists (as GET /v1/tasks).
 * Cost: each open stream looks at a cheap mark of the newest tasks (ids, statuses, update times;
 * TaskService.listMark) every TASK_STREAM_POLL_MS (tasks change in other orchestrators too) and
 * reads the whole list (attempts and results included) only when the mark changed, or every
 * TASK_STREAM_FULL_MS (an attempt's phase, a membership change); it sends only what changed.
 * A token holds at most TASK_STREAMS_PER_TOKEN streams at once and the server TASK_STREAMS_TOTAL
 * (review 4 F1: 600 streams of one member token starved every other request); one more is
 * refused with 429 `too_many_requests` before it starts, and a closed stream frees its slot.
 */

/** How often an open stream looks for a change. */
export const TASK_STREAM_POLL_MS = 1000;
/** How often an open stream reads the whole list even when the mark did not change. */
export const TASK_STREAM_FULL_MS = 5000;

/** The most task streams one token holds open at once (its web sessions included). */
export const TASK_STREAMS_PER_TOKEN = 8;
/** The most task streams the server holds open at once. */
export const TASK_STREAMS_TOTAL = 256;

export const hiddenTaskEvent = z.object({ id: z.string() });

export const taskChangeRoute: RouteDefinition<TaskRouteDeps> = {
  method: 'get',
  path: '/v1/tasks/events',
  summary:
    'The task list, live (Accept: text/event-stream; at most 8 streams per token and 256 per server at once, 429 beyond): a `task` event (a task as GET /v1/tasks gives it) for each task, then one whenever a task is new or changed, `hidden` ({ id }) when one leaves the list, a final `refused` event (the error body) when the token or session is revoked; ?environment=NAME&limit=N as GET /v1/tasks. Without the Accept header, the list once',
  auth: 'token',
  query: {
    environment: 'Only the tasks of this environment',
    limit: 'At most this many (default 50)',
  },
  responses: {
    200: {
      description: 'Events: `task` (a task in short), `hidden` ({ id }), `refused`',
      schema: taskList,
      eventStream: true,
    },
  },
  errors: ['invalid_input', 'not_found', 'too_many_requests'],
  handler: async (c, { tasks, logger, taskStreams }) => {
    const environment = c.req.query('environment');
    const limitText = c.req.query('limit');
    const limit = limitText === undefined || limitText === '' ? 50 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0)
      throw new BerthError('invalid_input', 'limit must be a whole number');
    const read = async () => {
      const list = await tasks.list(await c.get('recheck')(), { environment, limit });
      return list.map(({ task, environment: env, attempts }) =>
        taskSummary(task, env.spec.name, attempts),
      );
    };
    // The mark before the read: a change in between makes one more read, never a missed one.
    let mark = await tasks.listMark(limit);
    const first = await read(); // visibility of ?environment, before the stream starts
    if (!(c.req.header('accept') ?? '').includes('text/event-stream'))
      return c.json({ tasks: first });
    // Refused (429) before the stream starts when the token or the server holds too many.
    const release = taskStreams.take(c.get('caller').tokenId);

    return streamSSE(c, async (stream) => {
      const closed = new Promise<void>((resolve) => stream.onAbort(resolve));
      let open = true;
      void closed.then(() => (open = false));
      const sent = new Map<string, string>();
      let id = 0;
      try {
        let list: z.output<typeof taskSummarySchema>[] = first;
        while (open) {
          const now = new Set<string>();
          // Oldest first, so a client that inserts each new one on top keeps the order.
          for (const summary of [...list].reverse()) {
            now.add(summary.id);
            const text = JSON.stringify(summary);
            if (sent.get(summary.id) === text) continue;
            sent.set(summary.id, text);
            await stream.writeSSE({ id: String(++id), event: 'task', data: text });
          }
          for (const gone of [...sent.keys()].filter((key) => !now.has(key))) {
            sent.delete(gone);
            await stream.writeSSE({
              id: String(++id),
              event: 'hidden',
              data: JSON.stringify({ id: gone }),
            });
          }
          const lastFull = Date.now();
          for (;;) {
            await Promise.race([
              closed,
              new Promise<void>((resolve) => setTimeout(resolve, TASK_STREAM_POLL_MS)),
            ]);
            if (!open) break;
            // The token or the session may have been revoked since: authenticate every round.
            await c.get('recheck')();
            const next = await tasks.listMark(limit);
            if (next !== mark || Date.now() - lastFull >= TASK_STREAM_FULL_MS) {
              mark = next;
              break;
            }
          }
          if (!open) break;
          list = await read();
        }
      } catch (error) {
        // The status line is sent already: the refusal travels as the last event.
        await sendStreamRefusal(stream, error, {
          open,
          requestId: c.get('requestId'),
          logger,
          logMessage: 'task change stream failed',
          fallbackMessage: 'the task stream failed',
        });
      } finally {
        release();
      }
    });
  },
};
