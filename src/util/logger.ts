import { pino, type Logger } from 'pino';

export type { Logger };

/** The structured logger. Secret values are masked by callers before anything reaches it. */
export function createLogger(
  level: string,
  destination: pino.DestinationStream = process.stderr,
): Logger {
  return pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
