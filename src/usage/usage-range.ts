import { BerthError } from '../errors/berth-error.js';

/**
 * The times a usage report is asked for: `from`/`to` of `GET /v1/usage` (a UTC date or an
 * ISO-8601 time) and `berth usage --since` (a duration back from now, or the same dates). Pure
 * functions; a refusal names the accepted forms.
 */

export const SINCE_FORMS =
  'a duration back from now (30m, 24h, 7d, 2w), a UTC date (2026-12-01) or an ISO-8601 time (2026-12-01T09:00:00Z)';

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
const DURATION = /^(\d{1,6})(m|h|d|w)$/;
const UNIT_MS = { m: 60_000, h: 3600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/** A UTC date (its midnight) or an ISO-8601 time with a zone; undefined for anything else. */
export function parseInstant(text: string): Date | undefined {
  const value = text.trim();
  if (DATE.test(value)) {
    const date = new Date(`${value}T00:00:00Z`);
    // 2026-02-30 parses as March 2nd: refused.
    return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value) ? date : undefined;
  }
  if (TIME.test(value)) {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? undefined : date;
  }
  return undefined;
}

/** `--since`: a duration back from `now`, or a date or time; refused with the accepted forms. */
export function parseSince(text: string, now: Date): Date {
  const duration = DURATION.exec(text.trim());
  if (duration) {
    const amount = Number(duration[1]);
    const unit = duration[2] as keyof typeof UNIT_MS;
    if (amount > 0) return new Date(now.getTime() - amount * UNIT_MS[unit]);
  }
  const instant = parseInstant(text);
  if (instant !== undefined) return instant;
  throw new BerthError('invalid_input', `--since "${text}" is not a time: give ${SINCE_FORMS}`, {
    since: text,
  });
}
