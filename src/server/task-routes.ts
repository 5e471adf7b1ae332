import { streamSSE } from 'hono/streaming';
import { isTerminalPhase } from '../domain/task/attempt-phase.js';
import { BerthError } from '../errors/berth-error.js';
import {
  cacheResetView,
  cacheView,
  createTaskBody,
  diffView,
  eventList,
  followUpBody,
  followUpResult,
  pickResult,
  pickTaskBody,
  pullRequestBody,
  pullRequestResult,
  taskList,
  taskView as taskViewSchema,
} from './api-schemas.js';
import { readBody } from './request-body.js';
import { sendStreamRefusal } from './stream-refusal.js';
import { pathParam, type RouteDefinition, type TaskRouteDeps } from './route-table.js';
import { attemptView, cacheEntryView, taskSummary, taskView } from './task-views.js';
import { taskChangeRoute } from './task-change-stream.js';

/**
 * Task routes: submit, list, show, events (JSON pages, or a live server-sent event stream),
 * diff, cancel, and an environment's cache.
 */

function intParam(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new BerthError('invalid_input', `${name} must be a whole number`);
  return n;
}

/** How often a live stream looks at the store when no event woke it (another orchestrator's attempt). */
const STREAM_POLL_MS = 500;

export const taskRoutes: RouteDefinition<TaskRouteDeps>[] = [
  {
    method: 'post',
    path: '/v1/tasks',
    summary: 'Submit a task: a prompt for the agent, or a command run as the agent phase',
    auth: 'token',
    body: { schema: createTaskBody },
    responses: {
      201: { description: 'The task with its queued attempts', schema: taskViewSchema },
    },
    errors: ['invalid_input', 'not_found', 'payload_too_large', 'limit_reached'],
    handler: async (c, { tasks }) => {
      const body = await readBody(c.req.raw, createTaskBody);
      const detail = await tasks.submit(c.get('caller'), body);
      return c.json(taskView(detail.task, detail.environment.spec.name, detail.attempts), 201);
    },
  },
  {
    method: 'get',
    path: '/v1/tasks',
    summary:
      'Recent tasks of the environments the caller may see (?environment=NAME&limit=N), each attempt in short (no diffs or command output)',
    auth: 'token',
    query: {
      environment: 'Only the tasks of this environment',
      limit: 'At most this many (default 50)',
    },
    responses: { 200: { description: 'Tasks, newest first', schema: taskList } },
    errors: ['invalid_input'],
    handler: async (c, { tasks }) => {
      const list = await tasks.list(c.get('caller'), {
        environment: c.req.query('environment'),
        limit: intParam(c.req.query('limit'), 'limit', 50),
      });
      return c.json({
        tasks: list.map(({ task, environment, attempts }) =>
          taskSummary(task, environment.spec.name, attempts),
        ),
      });
    },
  },
  // Before /v1/tasks/:id, which would take `events` for an id.
  taskChangeRoute,
  {
    method: 'get',
    path: '/v1/tasks/:id',
    summary: 'A task and its attempts',
    auth: 'token',
    params: { id: 'The task id (task_…)' },
    responses: { 200: { description: 'The task', schema: taskViewSchema } },
    errors: ['not_found'],
    handler: async (c, { tasks }) => {
      const detail = await tasks.get(c.get('caller'), pathParam(c, 'id'));
      return c.json(taskView(detail.task, detail.environment.spec.name, detail.attempts));
    },
  },
  {
    method: 'post',
    path: '/v1/tasks/:id/cancel',
    summary: 'Cancel every attempt that has not finished',
    auth: 'token',
    params: { id: 'The task id (task_…)' },
    responses: { 200: { description: 'The task', schema: taskViewSchema } },
    errors: ['not_found'],
    handler: async (c, { tasks }) => {
      const detail = await tasks.cancel(c.get('caller'), pathParam(c, 'id'));
      return c.json(taskView(detail.task, detail.environment.spec.name, detail.attempts));
    },
  },
  {
    method: 'post',
    path: '/v1/tasks/:id/pick',
    summary:
      'Pick the attempt that becomes the PR, is applied, or takes follow-ups (a failed one with a warning)',
    auth: 'token',
    params: { id: 'The task id (task_…)' },
    body: { schema: pickTaskBody },
    responses: { 200: { description: 'The task, with `picked` set', schema: pickResult } },
    errors: ['invalid_input', 'not_found', 'conflict'],
    handler: async (c, { tasks }) => {
      const body = await readBody(c.req.raw, pickTaskBody);
      const { detail, warning } = await tasks.pick(
        c.get('caller'),
        pathParam(c, 'id'),
        body.attempt,
      );
      return c.json({
        ...taskView(detail.task, detail.environment.spec.name, detail.attempts),
        warning,
      });
    },
  },
  {
    method: 'post',
    path: '/v1/tasks/:id/followup',
    summary:
      'A follow-up turn on the picked attempt: a new attempt from its snapshot, with the prompt (or command); it becomes the pick',
    auth: 'token',
    params: { id: 'The task id (task_…)' },
    body: { schema: followUpBody },
    responses: { 201: { description: 'The task, with the queued turn', schema: followUpResult } },
    errors: ['invalid_input', 'not_found', 'conflict', 'limit_reached'],
    handler: async (c, { tasks }) => {
      const body = await readBody(c.req.raw, followUpBody);
      const { detail, attempt } = await tasks.followUp(c.get('caller'), pathParam(c, 'id'), body);
      return c.json(
        {
          ...taskView(detail.task, detail.environment.spec.name, detail.attempts),
          attempt: attempt.id,
        },
        201,
      );
    },
  },
  {
    method: 'post',
    path: '/v1/tasks/:id/pr',
    summary:
      "Push the picked attempt's diff as branch berth/<task-id> and, for GitHub, open (or, run again, update) the pull request",
    auth: 'token',
    params: { id: 'The task id (task_…)' },
    body: { schema: pullRequestBody },
    responses: {
      200: { description: 'What was pushed and the pull request', schema: pullRequestResult },
    },
    errors: ['invalid_input', 'not_found', 'conflict', 'forbidden', 'remote_error'],
    handler: async (c, { tasks }) => {
      const body = await readBody(c.req.raw, pullRequestBody);
      return c.json(await tasks.pullRequest(c.get('caller'), pathParam(c, 'id'), body));
    },
  },
  {
    method: 'get',
    path: '/v1/tasks/:id/diff',
    summary:
      "An attempt's diff (?attempt=ID; default the picked one; 409 when several attempts and none picked)",
    auth: 'token',
    params: { id: 'The task id (task_…)' },
    query: { attempt: 'The attempt (att_…); default the picked one' },
    responses: { 200: { description: 'The diff', schema: diffView } },
    errors: ['not_found', 'conflict'],
    handler: async (c, { tasks }) => {
      const { attempt } = await tasks.resultAttempt(
        c.get('caller'),
        pathParam(c, 'id'),
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
    },
  },
  {
    method: 'get',
    path: '/v1/tasks/:id/attempts/:attempt/events',
    summary:
      "An attempt's events after ?after=SEQ. With Accept: text/event-stream, a live server-sent event stream (event = the event type, id = its seq; a final `end` event carries the attempt; a final `refused` event, with the error body, when the token or session is revoked or the environment hidden meanwhile)",
    auth: 'token',
    params: { id: 'The task id (task_…)', attempt: 'The attempt id (att_…)' },
    query: {
      after: 'Events after this seq (or the Last-Event-ID header); default 0',
      limit: 'At most this many (default 1000; JSON only)',
    },
    responses: { 200: { description: 'Events', schema: eventList, eventStream: true } },
    errors: ['invalid_input', 'not_found'],
    handler: async (c, { tasks, logger }) => {
      let caller = c.get('caller');
      const taskId = pathParam(c, 'id');
      const attemptId = pathParam(c, 'attempt');
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
            // The token (or the session) may have been revoked, or the caller removed from the
            // environment, since the stream opened: authenticate again on every round.
            caller = await c.get('recheck')();
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
        } catch (error) {
          // The stream's status line is sent already: the refusal travels as its last event.
          await sendStreamRefusal(stream, error, {
            open,
            requestId: c.get('requestId'),
            logger,
            logMessage: 'live event stream failed',
            fallbackMessage: 'the event stream failed',
          });
        } finally {
          unsubscribe();
        }
      });
    },
  },
  {
    method: 'get',
    path: '/v1/environments/:name/cache',
    summary: "The environment's cache entries: key, age, size, commit",
    auth: 'token',
    params: { name: 'The environment name' },
    responses: { 200: { description: 'Cache entries', schema: cacheView } },
    errors: ['not_found'],
    handler: async (c, { tasks, now }) => {
      const { environment, entries, sizesBeyondBase, keyNow } = await tasks.cache(
        c.get('caller'),
        pathParam(c, 'name'),
      );
      const at = now();
      return c.json({
        environment: environment.spec.name,
        entries: entries.map((e) =>
          cacheEntryView(
            e,
            at,
            environment.spec,
            sizesBeyondBase.get(e.id) ?? null,
            keyNow.get(e.id),
          ),
        ),
      });
    },
  },
  {
    method: 'delete',
    path: '/v1/environments/:name/cache',
    summary: 'Reset the cache: drop the entries and their images',
    auth: 'token',
    params: { name: 'The environment name' },
    responses: {
      200: {
        description: 'What was removed, and what keeps each image that was not',
        schema: cacheResetView,
      },
    },
    errors: ['not_found'],
    handler: async (c, { tasks }) => {
      const report = await tasks.resetCache(c.get('caller'), pathParam(c, 'name'));
      return c.json({ environment: pathParam(c, 'name'), ...report });
    },
  },
];
