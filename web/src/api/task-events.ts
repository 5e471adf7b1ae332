import { useEffect } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api, isReachable } from './client';
import type { TaskSummary } from './types';

/**
 * The task list, live: follows GET /v1/tasks/events (server-sent events) and puts each change
 * into the list's query data, so /tasks updates without polling. A `task` event is a task as
 * the list gives it (new ones go on top), `hidden` takes one out, `refused` (the token or
 * session was revoked) closes the stream and checks the session (a 401 goes to /login). The
 * browser reconnects a dropped stream by itself; the server then sends the whole list again.
 */

type TaskList = { tasks: TaskSummary[] };

/** Changes are applied at most this often (the first events are the whole list again). */
const FLUSH_MS = 100;

export function useTaskStream(environment: string | undefined, limit: number): void {
  const client = useQueryClient();
  useEffect(() => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (environment) query.set('environment', environment);
    const source = new EventSource(`/v1/tasks/events?${query.toString()}`, {
      withCredentials: true,
    });
    const key = ['tasks', environment ?? null];
    // What arrived since the last flush: a task by id, or null when it left the list.
    let pending = new Map<string, TaskSummary | null>();
    const flush = () => {
      if (pending.size === 0) return;
      const changes = pending;
      pending = new Map();
      client.setQueryData<TaskList>(key, (before) => {
        if (!before) return before;
        let tasks = before.tasks;
        let changed = false;
        for (const [id, task] of changes) {
          const at = tasks.findIndex((t) => t.id === id);
          if (task === null) {
            if (at >= 0) {
              tasks = tasks.filter((t) => t.id !== id);
              changed = true;
            }
          } else if (at < 0) {
            tasks = [task, ...tasks];
            changed = true;
          } else if (JSON.stringify(tasks[at]) !== JSON.stringify(task)) {
            // Only a task that really changed makes a new list (the stream starts with the whole
            // list again, mostly what the page has already).
            tasks = tasks.slice();
            tasks[at] = task;
            changed = true;
          }
        }
        return changed ? { ...before, tasks: tasks.slice(0, limit) } : before;
      });
    };
    const timer = setInterval(flush, FLUSH_MS);
    source.addEventListener('task', (message: MessageEvent<string>) => {
      try {
        const task = JSON.parse(message.data) as TaskSummary;
        pending.set(task.id, task);
      } catch {
        // Not JSON: skipped.
      }
    });
    source.addEventListener('hidden', (message: MessageEvent<string>) => {
      try {
        const { id } = JSON.parse(message.data) as { id: string };
        pending.set(id, null);
      } catch {
        // Not JSON: skipped.
      }
    });
    // The stream dropped (the browser reconnects by itself): a plain request says whether the
    // server is there (the banner shows while it is not); once the stream is back, so is the page.
    source.addEventListener('error', () => {
      void api.GET('/v1/session').catch(() => undefined);
    });
    source.addEventListener('open', () => {
      if (!isReachable()) void api.GET('/v1/session').catch(() => undefined);
    });
    source.addEventListener('refused', () => {
      source.close();
      void api.GET('/v1/session');
    });
    return () => {
      clearInterval(timer);
      source.close();
    };
  }, [client, environment, limit]);
}
