import { BerthError } from '../errors/berth-error.js';
import type { ApiClient } from './api-client.js';

/**
 * The turns of a task as `berth task diff --turn` and `berth task apply` count them: turn 1 is the
 * attempt the chain started from, each follow-up on it (and on its follow-ups) the next turn. The
 * chain ends at the attempt asked for (the picked one by default), so it is the line of work the
 * pick, `apply` and `pr` stand on, even when other attempts were followed up too.
 */

export interface TurnAttempt {
  id: string;
  followUpOf: string | null;
  diff: string;
  turnDiff: string | null;
  baseCommit: string | null;
}

/** The chain of turns that ends at `endId`, first turn first. */
export function turnChain<T extends TurnAttempt>(attempts: readonly T[], endId: string): T[] {
  const byId = new Map(attempts.map((a) => [a.id, a]));
  const chain: T[] = [];
  for (
    let at = byId.get(endId);
    at !== undefined;
    at = at.followUpOf === null ? undefined : byId.get(at.followUpOf)
  ) {
    if (chain.includes(at)) break;
    chain.unshift(at);
  }
  return chain;
}

/** `--turn N` (1-based) or `--turn last`: the turn's number and its own diff. */
export function turnDiffOf(
  chain: readonly TurnAttempt[],
  turn: string,
  taskId: string,
): { number: number; attempt: TurnAttempt; diff: string } {
  const count = chain.length;
  const number = turn === 'last' ? count : /^[1-9][0-9]{0,5}$/.test(turn) ? Number(turn) : NaN;
  const last = chain[count - 1];
  if (!Number.isInteger(number) || number < 1 || number > count || last === undefined) {
    throw new BerthError(
      'invalid_input',
      `--turn must be a whole number from 1 to ${count}, or last (task ${taskId}${last ? `'s attempt ${last.id}` : ''} has ${count} turn${count === 1 ? '' : 's'}; got ${JSON.stringify(turn)})`,
      { turn, turns: count },
    );
  }
  const attempt = chain[number - 1] as TurnAttempt;
  // Turn 1 is a plain attempt: its whole change is its own.
  if (number === 1) return { number, attempt, diff: attempt.diff };
  if (attempt.turnDiff === null) {
    throw new BerthError(
      'invalid_input',
      `turn ${number} (attempt ${attempt.id}) has no diff of its own recorded (it did not get to its results)`,
      { turn: number, attempt: attempt.id },
    );
  }
  return { number, attempt, diff: attempt.turnDiff };
}

/** What `task apply` applies when the attempt has follow-ups: said before it is applied. */
export function wholeChangeNote(chain: readonly TurnAttempt[], taskId: string): string | undefined {
  if (chain.length < 2) return undefined;
  const base = chain[0]?.baseCommit?.slice(0, 12) ?? 'the base commit';
  return `the whole change since ${base}: all ${chain.length} turns (attempt ${chain[0]?.id ?? ''} and ${chain.length - 1} follow-up${chain.length === 2 ? '' : 's'}); one turn alone is berth task diff ${taskId} --turn N`;
}

export interface DiffView {
  attempt: string;
  baseCommit: string | null;
  diff: string;
  secretFiles?: string[];
}

/**
 * GET the task's diff as the server resolves it (of `attempt`, else the picked one), and with
 * `turn` that turn's own diff instead; `chain` is the turns ending at the resolved attempt.
 */
export async function fetchDiff(
  client: ApiClient,
  taskId: string,
  attempt: string | undefined,
  turn?: string,
): Promise<{ view: DiffView & { turn?: number }; chain: TurnAttempt[] }> {
  const view: DiffView = await client.call((api) =>
    api.GET('/v1/tasks/{id}/diff', {
      params: { path: { id: taskId }, query: attempt !== undefined ? { attempt } : {} },
    }),
  );
  const task: { attempts: TurnAttempt[] } = await client.call((api) =>
    api.GET('/v1/tasks/{id}', { params: { path: { id: taskId } } }),
  );
  const chain = turnChain(task.attempts, view.attempt);
  if (turn === undefined) return { view, chain };
  const picked = turnDiffOf(chain, turn, taskId);
  return {
    view: { ...view, attempt: picked.attempt.id, diff: picked.diff, turn: picked.number },
    chain,
  };
}

export const TURN_HELP =
  "one turn's own change: 1 is the attempt, 2 its first follow-up, …, or last (default: the whole change since the base)";
