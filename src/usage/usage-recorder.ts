import type { Store } from '../ports/store.js';
import type { AttemptObserver, FinishedAttempt } from '../lifecycle/attempt-observer.js';

/**
 * Records what each finished attempt used (issue 17 item 5) in the store: the model's tokens in
 * and out (as the model API reported them), the sandbox's CPU-seconds and peak memory (the
 * engine's statistics, read just before the sandbox is removed), and the wall time from the
 * attempt's claim to its end. A cancelled attempt whose sandbox was killed at once has no
 * engine figures (null).
 */
export class UsageRecorder implements AttemptObserver {
  constructor(private readonly store: Pick<Store, 'recordAttemptUsage'>) {}

  async finished(attempt: FinishedAttempt): Promise<void> {
    await this.store.recordAttemptUsage({
      attemptId: attempt.attemptId,
      taskId: attempt.taskId,
      environmentId: attempt.environmentId,
      createdBy: attempt.createdBy,
      finishedAt: attempt.finishedAt,
      inputTokens: attempt.tokens?.input ?? 0,
      outputTokens: attempt.tokens?.output ?? 0,
      cpuSeconds:
        attempt.sandbox !== undefined ? Math.round(attempt.sandbox.cpuSeconds * 1000) / 1000 : null,
      peakMemoryBytes: attempt.sandbox?.peakMemoryBytes ?? null,
      wallMs: Math.max(0, Date.parse(attempt.finishedAt) - Date.parse(attempt.claimedAt)),
    });
  }
}
