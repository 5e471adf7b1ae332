import { newId } from '../../../src/domain/ids.js';
import type { Attempt, AttemptError, AttemptResult } from '../../../src/domain/task/attempt.js';
import type { AttemptPhase } from '../../../src/domain/task/attempt-phase.js';
import { taskStatusOfTurns, type Task } from '../../../src/domain/task/task.js';
import type { AttemptEvent } from '../../../src/domain/task/attempt-event.js';
import type { Store } from '../../../src/ports/store.js';
import type { TaskRunner } from '../../../src/services/task-service.js';

/**
 * The task runner Slack's tests run tasks with, without Docker: it queues tasks in the real store
 * as the scheduler does, claims them through the store's queue, and walks each attempt through
 * the phases (creating → setup → agent → results → succeeded) with a short pause between them,
 * ending with the result (or the error) `outcome` gives. The lifecycle itself (sandboxes, the
 * agent) is tested elsewhere; the Slack tests look at what Slack shows of it.
 */

export type ScriptedOutcome =
  { result: AttemptResult } | { error: AttemptError; failedIn: AttemptPhase };

export class ScriptedRunner implements TaskRunner {
  private readonly timer: NodeJS.Timeout;
  private busy = false;
  /** Attempts walked so far (ids). */
  readonly ran: string[] = [];

  constructor(
    private readonly store: Store,
    private readonly outcome: (task: Task, attempt: Attempt) => ScriptedOutcome,
    private readonly stepMs = 60,
  ) {
    this.timer = setInterval(() => void this.tick(), 20);
  }

  async submit(input: Parameters<TaskRunner['submit']>[0]): Promise<{ task: Task }> {
    const now = new Date().toISOString();
    const task: Task = {
      id: newId('task'),
      environmentId: input.environmentId,
      prompt: input.prompt,
      command: input.command,
      ref: input.ref,
      repository: null,
      attemptCount: input.attempts,
      status: 'queued',
      createdAt: now,
      updatedAt: now,
      agent: input.agent ?? null,
      createdBy: input.createdBy ?? null,
    };
    const attempts: Attempt[] = Array.from({ length: input.attempts }, (_, index) => ({
      id: newId('attempt'),
      taskId: task.id,
      index,
      phase: 'queued',
      cacheHit: null,
      error: null,
      result: null,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
    }));
    await this.store.createTask(task, attempts);
    return { task };
  }

  cancel(): Promise<void> {
    return Promise.resolve();
  }

  subscribe(_attemptId: string, _listener: (event: AttemptEvent) => void): () => void {
    return () => undefined;
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const claimed = await this.store.claimNextAttempt({
        owner: 'scripted',
        now: new Date().toISOString(),
        leaseMs: 60_000,
      });
      if (claimed) void this.walk(claimed);
    } finally {
      this.busy = false;
    }
  }

  private async walk(attempt: Attempt): Promise<void> {
    const task = await this.store.getTask(attempt.taskId);
    if (!task) return;
    this.ran.push(attempt.id);
    const outcome = this.outcome(task, attempt);
    // A prompt that says "slowly" takes 15 times longer per phase (a restart fits in it).
    const stepMs = task.prompt.includes('slowly') ? this.stepMs * 15 : this.stepMs;
    const pause = () => new Promise((r) => setTimeout(r, stepMs));
    const move = async (phase: AttemptPhase, change: Record<string, unknown> = {}) => {
      await this.store.updateAttempt(attempt.id, { phase, ...change });
      await this.store.updateTaskStatus(
        task.id,
        taskStatusOfTurns(await this.store.listAttempts(task.id)),
        new Date().toISOString(),
      );
    };
    await move('creating', { startedAt: new Date().toISOString() });
    for (const phase of ['setup', 'agent', 'results'] as const) {
      await pause();
      if ('error' in outcome && outcome.failedIn === phase) {
        await move('failed', { error: outcome.error, finishedAt: new Date().toISOString() });
        return;
      }
      await move(phase);
    }
    await pause();
    if ('result' in outcome)
      await move('succeeded', { result: outcome.result, finishedAt: new Date().toISOString() });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
