/**
 * The one error root of Berth. Every refusal or failure a user can see is a BerthError with a
 * code from ERROR_CODES; the HTTP status and the CLI exit code for each code are decided here
 * and nowhere else.
 */
export const ERROR_CODES = {
  invalid_input: { http: 400, exit: 2 },
  invalid_environment: { http: 400, exit: 2 },
  unauthorized: { http: 401, exit: 2 },
  /** The request is right but the token may not do it (not bad input). */
  forbidden: { http: 403, exit: 1 },
  not_found: { http: 404, exit: 1 },
  conflict: { http: 409, exit: 2 },
  payload_too_large: { http: 413, exit: 2 },
  /** Too many attempts in a short time (signing in to the web UI); try again later. */
  too_many_requests: { http: 429, exit: 1 },
  /** An environment's daily budget (`limits`: tokensPerDay, attemptsPerDay) is used up. */
  limit_reached: { http: 429, exit: 1 },
  image_missing: { http: 424, exit: 1 },
  runtime_unavailable: { http: 503, exit: 1 },
  sandbox_gone: { http: 410, exit: 1 },
  /** A sandbox wrote past its disk limit, or the engine's disk is (nearly) full. */
  disk_full: { http: 507, exit: 1 },
  timeout: { http: 504, exit: 1 },
  cancelled: { http: 409, exit: 1 },
  task_failed: { http: 500, exit: 1 },
  server_unreachable: { http: 502, exit: 1 },
  model_error: { http: 502, exit: 1 },
  remote_error: { http: 502, exit: 1 },
  internal: { http: 500, exit: 1 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export type ErrorDetails = Record<string, unknown>;

export class BerthError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(
    code: ErrorCode,
    message: string,
    details: ErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BerthError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Wraps anything thrown into a BerthError, keeping BerthErrors as they are. */
export function toBerthError(error: unknown): BerthError {
  if (error instanceof BerthError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new BerthError('internal', message, {}, { cause: error });
}

/** The wire shape of every error the API returns. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details: ErrorDetails;
  requestId: string;
}
