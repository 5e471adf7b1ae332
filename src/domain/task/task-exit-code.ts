import type { AttemptStatus, AttemptVerification } from './attempt.js';

/**
 * The exit code of a command that waits for a task (`berth exec --wait`, `berth run`), decided
 * here for both:
 * - 0: every attempt succeeded (a failed verification does not count unless it is required);
 * - 1: an attempt did not succeed (failed or cancelled);
 * - 3 (`VERIFY_FAILED_EXIT_CODE`): every attempt succeeded, but verification is required
 *   (`--require-verify`, or the environment's `verifyRequired: true`) and an attempt's
 *   verification failed or did not run.
 */
export const VERIFY_FAILED_EXIT_CODE = 3;

export interface FinishedAttempt {
  status: AttemptStatus;
  verification: Pick<AttemptVerification, 'passed'> | null;
}

export function taskExitCode(attempts: readonly FinishedAttempt[], requireVerify: boolean): number {
  if (attempts.length === 0 || attempts.some((a) => a.status !== 'succeeded')) return 1;
  if (requireVerify && attempts.some((a) => a.verification?.passed !== true)) {
    return VERIFY_FAILED_EXIT_CODE;
  }
  return 0;
}
