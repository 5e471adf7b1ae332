import { isTerminalPhase } from '../domain/task/attempt-phase.js';
import type { Store } from '../ports/store.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import { warmOwnerOf } from './warm-pool.js';

/**
 * Whether a labelled Docker resource still belongs to something live, for the reaper: a sandbox
 * or network of an attempt that has not finished (or whose lease is still held: its snapshot is
 * being committed after the result), a warm sandbox of this orchestrator, a cache
 * image whose entry is recorded and live (or that is being published right now), a snapshot
 * before its expiry. Anything else is left over from a crash and may go.
 */
export function resourceLiveness(
  store: Store,
  options: { owner: string; now?: () => Date; publishGraceMs?: number },
): (labels: Record<string, string>, name?: string, state?: string) => Promise<boolean> {
  const now = options.now ?? (() => new Date());
  const grace = options.publishGraceMs ?? 10 * 60_000;
  return async (labels, name, state) => {
    const kind = labels[BERTH_LABELS.kind];
    const at = now();
    const expiresAt = Date.parse(labels['berth.expires-at'] ?? '');
    // A snapshot lives until its expiry, whatever else it carries (one committed by an older
    // Berth from a warm sandbox carries that sandbox's `berth.warm-owner`).
    if (kind === 'snapshot') return Number.isFinite(expiresAt) && expiresAt > at.getTime();
    const warmOwner = warmOwnerOf(name);
    // Another orchestrator's warm sandbox is live while that orchestrator holds a lease (it may
    // be running an attempt in it); see Scheduler.removeDeadWarmSandboxes.
    if (warmOwner !== undefined) {
      // One that died (with the Docker engine) is of no use to anyone: removed by the running
      // server's next pass, not only at its next start.
      if (state === 'exited' || state === 'dead') return false;
      return (
        warmOwner === options.owner ||
        (await store.countLiveLeases(warmOwner, now().toISOString())) > 0
      );
    }
    if (kind === 'cache') {
      const entries = await store.listCacheEntries();
      if (
        entries.some(
          (e) => e.key === labels[BERTH_LABELS.cache] && Date.parse(e.expiresAt) > at.getTime(),
        )
      )
        return true;
      // A build between its commit and its publish: its attempt is still running.
      const attemptId = labels[BERTH_LABELS.attempt];
      const attempt = attemptId ? await store.getAttempt(attemptId) : undefined;
      return (
        attempt !== undefined &&
        !isTerminalPhase(attempt.phase) &&
        at.getTime() - Date.parse(attempt.createdAt) < 24 * 3600_000 + grace
      );
    }
    const attemptId = labels[BERTH_LABELS.attempt];
    if (attemptId === undefined) return false;
    const attempt = await store.getAttempt(attemptId);
    // A finished attempt whose lease is still held is committing its snapshot and cleaning up.
    return (
      attempt !== undefined &&
      (!isTerminalPhase(attempt.phase) ||
        (attempt.leaseExpiresAt !== null && Date.parse(attempt.leaseExpiresAt) > at.getTime()))
    );
  };
}
