import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { isTerminalPhase } from '../domain/task/attempt-phase.js';
import { BerthError } from '../errors/berth-error.js';
import type { Caller } from '../services/caller.js';
import type { TaskService } from '../services/task-service.js';
import { createTaskBody, followUpBody, pickTaskBody, pullRequestBody } from './api-schemas.js';
import { readBody } from './request-body.js';
import { attemptView, cacheEntryView, taskView } from './task-views.js';

/**
 * Task routes: submit, list, show, events (JSON pages, or a live server-sent event stream),
 * diff, cancel, and an environment's cache.
 */

type Env = { Variables: { requestId: string; caller: Caller } };

function intParam(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new BerthError('invalid_input', `${name} must be a whole number`);
  return n;
}

/** How often a live stream looks at the store when no event woke it (another orchestrator's attempt). */
const STREAM_POLL_MS = 500;

export function registerTaskRoutes(
  app: Hono<Env>,
  tasks: TaskService,
  now: () => Date = () => new Date(),
): void {
  app.post('/v1/tasks', async (c) => {
    const body = await readBody(c.req.raw, createTaskBody);
    const detail = await tasks.submit(c.get('caller'), body);
    return c.json(taskView(detail.task, detail.environment.spec.name, detail.attempts), 201);
  });

  app.get('/v1/tasks', async (c) => {
    const list = await tasks.list(c.get('caller'), {
      environment: c.req.query('environment'),
      limit: intParam(c.req.query('limit'), 'limit', 50),
    });
    return c.json({
      tasks: list.map(({ task, environment, attempts }) =>
        taskView(task, environment.spec.name, attempts),
      ),
    });
  });

  app.get('/v1/tasks/:id', async (c) => {
    const detail = await tasks.get(c.get('caller'), c.req.param('id'));
    return c.json(taskView(detail.task, detail.environment.spec.name, detail.attempts));
  });

  app.post('/v1/tasks/:id/cancel', async (c) => {
    const detail = await tasks.cancel(c.get('caller'), c.req.param('id'));
    return c.json(taskView(detail.task, detail.environment.spec.name, detail.attempts));
  });

  app.post('/v1/tasks/:id/pick', async (c) => {
    const body = await readBody(c.req.raw, pickTaskBody);
    const { detail, warning } = await tasks.pick(c.get('caller'), c.req.param('id'), body.attempt);
    return c.json({
      ...taskView(detail.task, detail.environment.spec.name, detail.attempts),
      warning,
    });
  });

  app.post('/v1/tasks/:id/followup', async (c) => {
    const body = await readBody(c.req.raw, followUpBody);
    const { detail, attempt } = await tasks.followUp(c.get('caller'), c.req.param('id'), body);
    return c.json(
      {
        ...taskView(detail.task, detail.environment.spec.name, detail.attempts),
        attempt: attempt.id,
      },
      201,
    );
  });

  app.post('/v1/tasks/:id/pr', async (c) => {
    const body = await readBody(c.req.raw, pullRequestBody);
    return c.json(await tasks.pullRequest(c.get('caller'), c.req.param('id'), body));
  });

  app.get('/v1/tasks/:id/diff', async (c) => {
    const { attempt } = await tasks.resultAttempt(
      c.get('caller'),
      c.req.param('id'),
      c.req.query('attempt'),
    );
    const view = attemptView(attempt);
    // The stored diff has secret values masked already (lifecycle/result-diff.ts).
    return c.json({
      attempt: view.id,
      baseCommit: view.baseCommit,
      diff: view.diff,
      secretFiles: view.secretFiles,
    });
  });

  app.get('/v1/tasks/:id/attempts/:attempt/events', async (c) => {
    const caller = c.get('caller');
    const taskId = c.req.param('id');
    const attemptId = c.req.param('attempt');
    const after = intParam(c.req.query('after') ?? c.req.header('last-event-id'), 'after', 0);
    const live = (c.req.header('accept') ?? '').includes('text/event-stream');
    if (!live) {
      const events = await tasks.events(
        caller,
        taskId,
        attemptId,
        after,
        intParam(c.req.query('limit'), 'limit', 1000),
      );
      return c.json({ events });
    }
    await tasks.attempt(caller, taskId, attemptId); // visibility, before the stream starts
    return streamSSE(c, async (stream) => {
      let seq = after;
      let wake: (() => void) | undefined;
      const unsubscribe = tasks.subscribe(attemptId, () => wake?.());
      const closed = new Promise<void>((resolve) => stream.onAbort(resolve));
      let open = true;
      void closed.then(() => (open = false));
      try {
        while (open) {
          const events = await tasks.events(caller, taskId, attemptId, seq, 500);
          for (const event of events) {
            await stream.writeSSE({
              id: String(event.seq),
              event: event.type,
              data: JSON.stringify(event),
            });
            seq = event.seq;
          }
          if (events.length === 500) continue;
          const { attempt } = await tasks.attempt(caller, taskId, attemptId);
          if (isTerminalPhase(attempt.phase)) {
            // Everything recorded before the attempt finished has been sent.
            const rest = await tasks.events(caller, taskId, attemptId, seq, 10_000);
            for (const event of rest) {
              await stream.writeSSE({
                id: String(event.seq),
                event: event.type,
                data: JSON.stringify(event),
              });
              seq = event.seq;
            }
            await stream.writeSSE({ event: 'end', data: JSON.stringify(attemptView(attempt)) });
            break;
          }
          await Promise.race([
            closed,
            new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, STREAM_POLL_MS);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            }),
          ]);
          wake = undefined;
        }
      } finally {
        unsubscribe();
      }
    });
  });

  app.get('/v1/environments/:name/cache', async (c) => {
    const { environment, entries, sizesBeyondBase } = await tasks.cache(
      c.get('caller'),
      c.req.param('name'),
    );
    const at = now();
    return c.json({
      environment: environment.spec.name,
      entries: entries.map((e) =>
        cacheEntryView(e, at, environment.spec, sizesBeyondBase.get(e.id) ?? null),
      ),
    });
  });

  app.delete('/v1/environments/:name/cache', async (c) => {
    const report = await tasks.resetCache(c.get('caller'), c.req.param('name'));
    return c.json({ environment: c.req.param('name'), ...report });
  });
}
