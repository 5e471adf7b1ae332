import { useEffect } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api } from './client';
import type { TaskSummary } from './types';

/**
 * The task list, live: follows GET /v1/tasks/events (server-sent events) and puts each change
 * into the list's query data, so /tasks updates without polling. A `task` event is a task as
 * the list gives it (new ones go on top), `hidden` takes one out, `refused` (the token or
 * session was revoked) closes the stream and checks the session (a 401 goes to /login). The
 * browser reconnects a dropped stream by itself; the server then sends the whole list again.
 */

type TaskList = { tasks: TaskSummary[] };

export function useTaskStream(environment: string | undefined, limit: number): void {
  const client = useQueryClient();
  useEffect(() => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (environment) query.set('environment', environment);
    const source = new EventSource(`/v1/tasks/events?${query.toString()}`, {
      withCredentials: true,
    });
    const key = ['tasks', environment ?? null];
    const update = (change: (tasks: TaskSummary[]) => TaskSummary[]) =>
      client.setQueryData<TaskList>(key, (before) =>
        before ? { ...before, tasks: change(before.tasks) } : before,
      );
    source.addEventListener('task', (message: MessageEvent<string>) => {
      let task: TaskSummary;
      try {
        task = JSON.parse(message.data) as TaskSummary;
      } catch {
        return;
      }
      update((tasks) => {
        const at = tasks.findIndex((t) => t.id === task.id);
        if (at < 0) return [task, ...tasks].slice(0, limit);
        const next = tasks.slice();
        next[at] = task;
        return next;
      });
    });
    source.addEventListener('hidden', (message: MessageEvent<string>) => {
      try {
        const { id } = JSON.parse(message.data) as { id: string };
        update((tasks) => tasks.filter((t) => t.id !== id));
      } catch {
        // Not JSON: skipped.
      }
    });
    source.addEventListener('refused', () => {
      source.close();
      void api.GET('/v1/session');
    });
    return () => source.close();
  }, [client, environment, limit]);
}
