import type { AttemptEventBody } from '../domain/task/attempt-event.js';

/**
 * The attempt log's byte cap. Every event of an attempt is stored and replayed, so what a
 * sandbox can make Berth write is bounded: the output of its commands (`log` events, not Berth's
 * own `system` lines) and the commands it starts (`command_start`, review 4 F2) count against
 * MAX_LOG_BYTES; past it one warning says so and the rest of
 * the output is not kept (each command keeps its own head and tail in its record). Threat model:
 * the sandbox chooses how much it prints, so the count is of the bytes it sent, before any event
 * is stored.
 */

/** Output kept in an attempt's log (stdout and stderr of every phase together). */
export const MAX_LOG_BYTES = 32 * 1024 * 1024;

/** `emit` behind the cap: events past it are dropped, with one warning. */
export function capLog(
  emit: (event: AttemptEventBody) => void,
  maxBytes = MAX_LOG_BYTES,
): (event: AttemptEventBody) => void {
  let bytes = 0;
  return (event) => {
    const text =
      event.type === 'log' && event.stream !== 'system'
        ? event.text
        : event.type === 'command_start'
          ? event.command
          : undefined;
    if (text !== undefined) {
      const size = Buffer.byteLength(text, 'utf8');
      bytes += size;
      if (bytes > maxBytes) {
        if (bytes - size <= maxBytes) {
          emit({
            type: 'warning',
            message: `the attempt's output passed ${maxBytes / 1024 / 1024} MB; the rest of it is not kept in the log (commands keep their own head and tail)`,
          });
        }
        return;
      }
    }
    emit(event);
  };
}
