/**
 * The words a task's and an attempt's status are said in, and what each means: one list for the
 * API (its `status` fields), the CLI (`task show`, `task list`, `exec --wait`, `run`, `task
 * cancel`) and the web UI (which shows the API's words). docs/lifecycle.md "Status words" lists
 * the same. An attempt's status comes from its phase (`attemptStatus`), a task's from its
 * attempts (`taskStatusOfTurns`); nothing else decides either.
 */
export const STATUS_WORDS = {
  queued: 'waiting for a free slot (BERTH_CONCURRENCY); nothing has run yet',
  running:
    'an attempt is under way: from creating its sandbox (cache lookup, checkout, setup, waiting for a cache entry another attempt builds) to its results',
  succeeded: 'finished: the agent phase succeeded (for a command: exit code 0)',
  failed: 'finished: something failed (the reason is on the attempt: error)',
  cancelled: 'finished: stopped by `berth task cancel` (or the API, or Ctrl-C on `berth run`)',
} as const;

export type StatusWord = keyof typeof STATUS_WORDS;

export const STATUSES = Object.keys(STATUS_WORDS) as [StatusWord, ...StatusWord[]];

/** Whether a status is one of the three ends (nothing changes after it). */
export function isFinalStatus(status: StatusWord): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}
