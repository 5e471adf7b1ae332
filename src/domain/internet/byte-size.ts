/**
 * Sizes as an environment file writes them (`internet.budget.bytesOut: "10MB"`). Pure.
 * Decimal units are powers of 1000 (`KB`, `MB`, `GB`, `TB`), binary ones powers of 1024
 * (`KiB`, `MiB`, `GiB`, `TiB`); `B` or a plain number is bytes. Anything else is refused
 * naming the accepted units.
 */

const UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};

export const BYTE_SIZE_UNITS: readonly string[] = Object.keys(UNITS);

export type ByteSizeParse = { ok: true; bytes: number } | { ok: false; reason: string };

/** A size in bytes from `"10MB"`, `"1.5 GiB"`, `"512B"` or a whole number of bytes. */
export function parseByteSize(value: string | number): ByteSizeParse {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value > 0
      ? { ok: true, bytes: value }
      : { ok: false, reason: 'a size in bytes is a whole number above 0' };
  }
  const match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$/.exec(value);
  const accepted = `accepted units: ${BYTE_SIZE_UNITS.join(', ')}`;
  if (match === null)
    return { ok: false, reason: `not a size like "10MB" (a number and a unit; ${accepted})` };
  const unit = match[2] === '' ? 'B' : (match[2] ?? 'B');
  const factor = UNITS[unit];
  if (factor === undefined) return { ok: false, reason: `unknown unit "${unit}" (${accepted})` };
  const bytes = Math.floor(Number(match[1]) * factor);
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    return { ok: false, reason: 'a size is above 0 bytes and below 8 PB' };
  return { ok: true, bytes };
}

/** A short readable form of a byte count (`10 MB`). */
export function formatBytes(bytes: number): string {
  for (const [unit, factor] of [
    ['TB', 1e12],
    ['GB', 1e9],
    ['MB', 1e6],
    ['KB', 1e3],
  ] as const) {
    if (bytes >= factor) return `${Number((bytes / factor).toFixed(2))} ${unit}`;
  }
  return `${bytes} B`;
}
