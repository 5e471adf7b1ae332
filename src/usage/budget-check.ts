import { BerthError } from '../errors/berth-error.js';
import type { Store, StoredEnvironment } from '../ports/store.js';

/**
 * An environment's daily budgets (`limits: { tokensPerDay, attemptsPerDay }`, issue 17): checked
 * when a task is submitted, against the current UTC day. A task is refused (`limit_reached`, 429)
 * once the day's model tokens of the environment's finished attempts reached `tokensPerDay`, or
 * when its attempts would take the day's attempts past `attemptsPerDay`. Tokens are known only
 * when an attempt ends, so attempts running at the moment of the check can take the day past
 * `tokensPerDay`; the next task is refused then.
 */

function startOfUtcDay(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
}

export async function checkBudgets(
  store: Pick<Store, 'tokensUsedSince' | 'attemptsCreatedSince'>,
  environment: Pick<StoredEnvironment, 'id' | 'spec'>,
  attempts: number,
  now: Date,
): Promise<void> {
  const limits = environment.spec.limits;
  if (limits === undefined) return;
  const dayStart = startOfUtcDay(now);
  const since = dayStart.toISOString();
  const resetsAt = new Date(dayStart.getTime() + 24 * 3600_000).toISOString();
  if (limits.tokensPerDay !== undefined) {
    const used = await store.tokensUsedSince(environment.id, since);
    if (used >= limits.tokensPerDay)
      throw new BerthError(
        'limit_reached',
        `environment "${environment.spec.name}" has used its model tokens for today: ${used} of limits.tokensPerDay ${limits.tokensPerDay}; new tasks are taken again at ${resetsAt} (UTC midnight)`,
        { limit: 'tokensPerDay', used, allowed: limits.tokensPerDay, resetsAt },
      );
  }
  if (limits.attemptsPerDay !== undefined) {
    const used = await store.attemptsCreatedSince(environment.id, since);
    if (used + attempts > limits.attemptsPerDay)
      throw new BerthError(
        'limit_reached',
        `environment "${environment.spec.name}" has run ${used} of limits.attemptsPerDay ${limits.attemptsPerDay} attempts today; this task's ${attempts} would pass it (the day ends at ${resetsAt}, UTC midnight)`,
        {
          limit: 'attemptsPerDay',
          used,
          requested: attempts,
          allowed: limits.attemptsPerDay,
          resetsAt,
        },
      );
  }
}
