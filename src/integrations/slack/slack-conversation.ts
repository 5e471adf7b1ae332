import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { isTerminalPhase } from '../../domain/task/attempt-phase.js';
import type { Store } from '../../ports/store.js';
import type { Caller } from '../../services/caller.js';
import type { TaskService } from '../../services/task-service.js';
import type { Logger } from '../../util/logger.js';
import { finalMessage, progressMessage } from './slack-messages.js';
import type { SlackPoster } from './slack-poster.js';

/**
 * One task (or follow-up turn) in a thread: the progress reply is edited when an attempt's phase
 * changes (never a message per phase), and when every attempt of the turn has ended, the final
 * message is posted in the thread. It reads the task through the task service with the asker's
 * caller, as the API would. Each turn is in the store until its final message was posted (or
 * given up on), so a restarted server picks up the turns a stopped one was following (`resume`).
 */

export interface WatchedTurn {
  /** The turn's row in the store (slack_turns). */
  turnId: string;
  caller: Caller;
  channel: string;
  threadTs: string;
  replyTs: string | undefined;
  taskId: string;
  /** A follow-up turn: only these attempts (else all of the task's). */
  attemptIds?: readonly string[];
}

export class SlackConversation {
  private readonly controller = new AbortController();
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly deps: {
      tasks: TaskService;
      store: Store;
      poster: SlackPoster;
      publicUrl: string;
      pollMs: number;
      logger: Logger;
    },
  ) {
    // Every followed task waits on this one signal (a listener each while it sleeps).
    setMaxListeners(0, this.controller.signal);
  }

  /** Follows the turn in the background until it ends (or `stop`). */
  watch(turn: WatchedTurn): void {
    const run = this.follow(turn).catch(async (error: unknown) => {
      this.deps.logger.warn(
        { taskId: turn.taskId, err: error instanceof Error ? error.message : String(error) },
        'slack conversation stopped following the task',
      );
      await this.finish(turn);
    });
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  private async follow(turn: WatchedTurn): Promise<void> {
    const { tasks, poster, publicUrl, pollMs } = this.deps;
    const signal = this.controller.signal;
    const scope = turn.attemptIds ? { attemptIds: turn.attemptIds } : undefined;
    const fields = { taskId: turn.taskId };
    let shown = '';
    for (;;) {
      const detail = await tasks.get(turn.caller, turn.taskId);
      const attempts = scope
        ? detail.attempts.filter((a) => scope.attemptIds.includes(a.id))
        : detail.attempts;
      const done = attempts.length > 0 && attempts.every((a) => isTerminalPhase(a.phase));
      const progress = progressMessage(detail.task, detail.attempts, publicUrl, scope);
      if (progress.text !== shown && turn.replyTs !== undefined) {
        await poster.update(turn.channel, turn.replyTs, progress, fields);
        shown = progress.text;
      }
      if (done) {
        await poster.post(
          turn.channel,
          turn.threadTs,
          finalMessage(detail.task, detail.attempts, publicUrl, scope),
          fields,
        );
        // Posted, or logged as undelivered after the bounded retries: either way, done.
        await this.finish(turn);
        return;
      }
      if (signal.aborted) return;
      await sleep(pollMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
    }
  }

  private async finish(turn: WatchedTurn): Promise<void> {
    await this.deps.store
      .finishSlackTurn(turn.turnId, new Date().toISOString())
      .catch(() => undefined);
  }

  /** Stops following every task (the server is closing); waits for the loops to end. */
  async stop(): Promise<void> {
    this.controller.abort();
    await Promise.allSettled([...this.running]);
  }
}
