import type { AttemptEvent } from '../domain/task/attempt-event.js';

/** One line (or block) of progress for stderr. */
export function formatProgress(event: AttemptEvent, prefix: string): string {
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
      const tail =
        typeof event.details?.logTail === 'string' && event.details.logTail !== ''
          ? `\n${event.details.logTail}`
          : '';
      return `${prefix}error: ${event.message}${tail.replace(/\n/g, `\n${prefix}  `)}\n`;
    }
    case 'command':
      return `${prefix}$ ${event.command}  (exit code ${event.exitCode})\n`;
  }
}
