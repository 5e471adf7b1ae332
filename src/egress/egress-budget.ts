/**
 * Threat model. `internet.budget` bounds what one attempt moves through its egress proxy
 * (requests, bytes out, bytes in), so that an allowed host cannot carry unbounded data out, nor
 * a sandbox fetch without end. The sandbox is hostile: it may split data over many small
 * requests, send it in request heads (paths, headers), in bodies of unknown length (chunked), or
 * through a plain tunnel.
 *
 * Guarantees (one budget per proxy, and the proxy is per attempt):
 * - every request the proxy forwards counts once (each request inside an intercepted tunnel; a
 *   plain tunnel counts as one request); refused requests do not count;
 * - bytes out are request heads (as parsed: request line and header fields) and bodies, bytes in
 *   response heads and bodies; a plain tunnel counts every byte it moves each way;
 * - once a limit is reached, every later request and tunnel is refused (403, rule `budget`,
 *   naming the field); a request or response whose declared length would pass the limit is
 *   refused before it is sent; a body of unknown length that passes it is cut there (the
 *   connection closes), so no transfer goes on past its budget by more than one read.
 * Not covered: bytes of TLS itself (handshakes, record overhead) and of refused requests.
 */
import type http from 'node:http';
import { formatBytes, parseByteSize } from '../domain/internet/byte-size.js';
import type { InternetPolicy } from '../domain/environment/environment-spec.js';

export type BudgetField = 'requests' | 'bytesOut' | 'bytesIn';

export interface BudgetLimits {
  requests?: number;
  bytesOut?: number;
  bytesIn?: number;
}

/** The limits of an environment's `internet.budget` in bytes (undefined: no budget). */
export function budgetLimits(budget: InternetPolicy['budget']): BudgetLimits | undefined {
  if (budget === undefined) return undefined;
  const limits: BudgetLimits = {};
  if (budget.requests !== undefined) limits.requests = budget.requests;
  for (const field of ['bytesOut', 'bytesIn'] as const) {
    const value = budget[field];
    if (value === undefined) continue;
    const parsed = parseByteSize(value);
    if (parsed.ok) limits[field] = parsed.bytes;
  }
  return limits;
}

export class EgressBudget {
  private readonly used = { requests: 0, bytesOut: 0, bytesIn: 0 };

  constructor(readonly limits: BudgetLimits) {}

  /** Whether bytes are limited (a plain tunnel then relays in JavaScript, where it can count). */
  get limitsBytes(): boolean {
    return this.limits.bytesOut !== undefined || this.limits.bytesIn !== undefined;
  }

  /** What was used so far (for the log). */
  usage(): Readonly<Record<BudgetField, number>> {
    return { ...this.used };
  }

  /** Why no more requests pass (a limit reached), or undefined. */
  exhausted(): string | undefined {
    for (const field of ['requests', 'bytesOut', 'bytesIn'] as const) {
      const limit = this.limits[field];
      if (limit !== undefined && this.used[field] >= limit) return reached(field, limit);
    }
    return undefined;
  }

  /**
   * Counts one forwarded request with its head and declared body length; the refusal when a
   * limit is reached or the declared length would pass `bytesOut`.
   */
  admit(headBytes: number, declaredBodyBytes = 0): string | undefined {
    const exhausted = this.exhausted();
    if (exhausted !== undefined) return exhausted;
    const out = this.limits.bytesOut;
    if (out !== undefined && this.used.bytesOut + headBytes + declaredBodyBytes > out) {
      return `the request would pass the budget of ${formatBytes(out)} sent (internet.budget.bytesOut; ${formatBytes(this.used.bytesOut)} used)`;
    }
    this.used.requests++;
    this.used.bytesOut += headBytes;
    return undefined;
  }

  /** Counts bytes sent; the refusal when they passed `bytesOut` (the transfer is then cut). */
  spendOut(bytes: number): string | undefined {
    return this.spend('bytesOut', bytes);
  }

  /** Counts bytes received; the refusal when they passed `bytesIn` (the transfer is then cut). */
  spendIn(bytes: number): string | undefined {
    return this.spend('bytesIn', bytes);
  }

  /** Whether a response of this declared length fits; the refusal when it would pass `bytesIn`. */
  fitsIn(bytes: number): string | undefined {
    const limit = this.limits.bytesIn;
    if (limit === undefined || this.used.bytesIn + bytes <= limit) return undefined;
    return `the response would pass the budget of ${formatBytes(limit)} received (internet.budget.bytesIn; ${formatBytes(this.used.bytesIn)} used)`;
  }

  private spend(field: 'bytesOut' | 'bytesIn', bytes: number): string | undefined {
    this.used[field] += bytes;
    const limit = this.limits[field];
    return limit !== undefined && this.used[field] > limit ? reached(field, limit) : undefined;
  }
}

function reached(field: BudgetField, limit: number): string {
  return field === 'requests'
    ? `budget reached: ${limit} requests (internet.budget.requests)`
    : `budget reached: ${formatBytes(limit)} ${field === 'bytesOut' ? 'sent' : 'received'} (internet.budget.${field})`;
}

/** The size of a parsed request head: request line and header fields. */
export function requestHeadBytes(req: http.IncomingMessage): number {
  let bytes = (req.method ?? '').length + (req.url ?? '').length + 12;
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    bytes += (req.rawHeaders[i]?.length ?? 0) + (req.rawHeaders[i + 1]?.length ?? 0) + 4;
  return bytes + 2;
}

/** The size of a response head from its status line and header fields. */
export function responseHeadBytes(
  status: number,
  reason: string,
  headers: Iterable<readonly [string, string]>,
): number {
  let bytes = 13 + String(status).length + reason.length;
  for (const [name, value] of headers) bytes += name.length + value.length + 4;
  return bytes + 2;
}
