import { useEffect, useState } from 'react';
import { api } from './client';
import { appendEvents } from './event-list';
import type { AttemptEvent } from './types';

/**
 * An attempt's events, live: the server-sent event stream of
 * GET /v1/tasks/{id}/attempts/{attempt}/events (the one read that is a stream, not a query; its
 * events have the generated `AttemptEvent` type). Events are gathered and handed to React at
 * most every FLUSH_MS, so a fast log does not render once per line. The stream ends with `end`.
 */

const FLUSH_MS = 100;
const EVENT_TYPES = [
  'phase',
  'log',
  'command',
  'command_start',
  'files',
  'warning',
  'cache',
  'error',
  'egress',
  'agent_turn',
  'tool_call',
  'tool_result',
  'plan',
  'usage',
  'agent_end',
] as const;

export function useAttemptEvents(taskId: string, attemptId: string | undefined) {
  const [events, setEvents] = useState<AttemptEvent[]>([]);
  const [ended, setEnded] = useState(false);
  useEffect(() => {
    setEvents([]);
    setEnded(false);
    if (!attemptId) return;
    const url = `/v1/tasks/${encodeURIComponent(taskId)}/attempts/${encodeURIComponent(attemptId)}/events`;
    const source = new EventSource(url, { withCredentials: true });
    let pending: AttemptEvent[] = [];
    const timer = setInterval(() => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      setEvents((before) => appendEvents(before, batch));
    }, FLUSH_MS);
    const onEvent = (message: MessageEvent<string>) => {
      try {
        pending.push(JSON.parse(message.data) as AttemptEvent);
      } catch {
        // Not JSON: not an event of this API; skipped.
      }
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
    source.addEventListener('end', () => {
      source.close();
      setEnded(true);
    });
    // The server ended the stream: the token or session was revoked, or the task is hidden now.
    // A plain request says which (the client sends a 401 on to /login).
    source.addEventListener('refused', () => {
      source.close();
      setEnded(true);
      void api.GET('/v1/session');
    });
    return () => {
      clearInterval(timer);
      source.close();
    };
  }, [taskId, attemptId]);
  return { events, ended };
}
