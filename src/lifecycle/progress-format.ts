import type { AttemptEvent } from '../domain/task/attempt-event.js';
import type { AgentEventBody } from '../agent/agent-event.js';
import { formatAgentEvent } from '../agent/format-agent-event.js';

const AGENT_EVENT_TYPES = new Set([
  'agent_turn',
  'agent_end',
  'plan',
  'tool_call',
  'tool_result',
  'usage',
]);

function isAgentEvent(event: { type: string }): event is AgentEventBody {
  return AGENT_EVENT_TYPES.has(event.type);
}

/** One line (or block) of progress for stderr. */
export function formatProgress(event: AttemptEvent, prefix: string): string {
  // The agent's events share the log; their own formatter knows them.
  const loose = event as { type: string };
  if (isAgentEvent(loose)) return formatAgentEvent(loose, prefix);
  switch (event.type) {
    case 'phase':
      return `${prefix}== ${event.phase}\n`;
    case 'log':
      return event.text === ''
        ? ''
        : prefix === ''
          ? event.text
          : event.text.replace(/^(?=.)/gm, prefix);
    case 'cache':
      return `${prefix}cache ${event.result}: ${event.reason}\n`;
    case 'warning':
      return `${prefix}warning: ${event.message}\n`;
    case 'error': {
      // A script's output was printed as it ran (`logShown`): not a second time. A service's log
      // (not streamed) is shown here.
      const tail =
        typeof event.details?.logTail === 'string' &&
        event.details.logTail !== '' &&
        event.details.logShown !== true
          ? `\n${event.details.logTail}`
          : '';
      // A cancelled attempt says `cancelled` (its status word), not `error`.
      const word = event.code === 'cancelled' ? 'cancelled' : 'error';
      return `${prefix}${word}: ${event.message}${tail.replace(/\n/g, `\n${prefix}  `)}\n`;
    }
    case 'command':
      return `${prefix}$ ${event.command}  (exit code ${event.exitCode}${event.outOfMemory === true ? ', out of memory: resources.memoryMb' : ''})\n`;
    case 'egress':
      return `${prefix}egress ${event.allowed ? 'allowed' : 'denied'} ${event.method} ${event.host}:${event.port} (${event.rule})${event.allowed ? '' : `: ${event.reason}`}\n`;
  }
  return '';
}
