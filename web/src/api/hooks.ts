import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from './client';
import { useTaskStream } from './task-events';
import type { Session } from './types';

/**
 * Server state for the pages: one query hook per read, one mutation hook per change, each
 * calling the generated client. The task list follows the server's task stream; a task page
 * whose task is still running polls (POLL_MS) besides its attempt's event stream.
 */

export const POLL_MS = 2000;
/** How many tasks /tasks shows. */
const TASK_LIST_LIMIT = 100;

const isLive = (status: string) => status === 'queued' || status === 'running';

export function useSession() {
  return useQuery({
    queryKey: ['session'],
    queryFn: () => unwrap(api.GET('/v1/session')),
    retry: false,
    staleTime: Infinity,
  });
}

export function useSignIn() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (token: string) => unwrap(api.POST('/v1/session', { body: { token } })),
    onSuccess: (session: Session) => client.setQueryData(['session'], session),
  });
}

export function useSignOut() {
  return useMutation({ mutationFn: () => unwrap(api.DELETE('/v1/session')) });
}

/** The task list's query (main.tsx starts it with the page, before the session is known). */
export function tasksQuery(environment: string | undefined) {
  return {
    queryKey: ['tasks', environment ?? null],
    queryFn: () =>
      unwrap(
        api.GET('/v1/tasks', {
          params: {
            query: {
              limit: String(TASK_LIST_LIMIT),
              ...(environment ? { environment } : {}),
            } as never,
          },
        }),
      ),
    staleTime: Infinity,
  };
}

/** The task list: read once, then kept up to date by the task stream (task-events.ts). */
export function useTasks(environment: string | undefined) {
  useTaskStream(environment, TASK_LIST_LIMIT);
  return useQuery(tasksQuery(environment));
}

export function useTask(id: string) {
  return useQuery({
    queryKey: ['task', id],
    queryFn: () => unwrap(api.GET('/v1/tasks/{id}', { params: { path: { id } } })),
    refetchInterval: (query) => {
      const task = query.state.data;
      return task && !isLive(task.status) && !task.attempts.some((a) => isLive(a.status))
        ? false
        : POLL_MS;
    },
  });
}

export function useDiff(id: string, attempt: string | undefined) {
  return useQuery({
    queryKey: ['diff', id, attempt ?? null],
    queryFn: () =>
      unwrap(
        api.GET('/v1/tasks/{id}/diff', {
          params: { path: { id }, query: (attempt ? { attempt } : {}) as never },
        }),
      ),
    enabled: attempt !== undefined,
  });
}

export function useEnvironments() {
  return useQuery({
    queryKey: ['environments'],
    queryFn: () => unwrap(api.GET('/v1/environments')),
  });
}

export function useEnvironment(name: string | undefined) {
  return useQuery({
    queryKey: ['environment', name ?? null],
    queryFn: () =>
      unwrap(api.GET('/v1/environments/{name}', { params: { path: { name: name ?? '' } } })),
    enabled: name !== undefined,
  });
}

export function useCache(name: string | undefined) {
  return useQuery({
    queryKey: ['cache', name ?? null],
    queryFn: () =>
      unwrap(api.GET('/v1/environments/{name}/cache', { params: { path: { name: name ?? '' } } })),
    enabled: name !== undefined,
  });
}

export function useTokens(enabled: boolean) {
  return useQuery({
    queryKey: ['tokens'],
    queryFn: () => unwrap(api.GET('/v1/tokens')),
    enabled,
  });
}

export function useInvalidate() {
  const client = useQueryClient();
  return (...keys: unknown[][]) =>
    Promise.all(keys.map((queryKey) => client.invalidateQueries({ queryKey })));
}
