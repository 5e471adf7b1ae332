import {
  AttemptEventSequence,
  type AttemptEvent,
  type AttemptEventBody,
} from '../domain/task/attempt-event.js';
import { isTerminalPhase } from '../domain/task/attempt-phase.js';
import { toBerthError } from '../errors/berth-error.js';
import type { Store } from '../ports/store.js';

export type AttemptEventListener = (event: AttemptEvent) => void;

/**
 * Records one attempt's events: numbers them, hands them to live listeners at once, and writes
 * them to the store in order (one write at a time, batched while one is running), moving the
 * attempt's phase in the store with each phase event. Writes are conditional on the lease, so
 * an orchestrator that lost an attempt cannot overwrite it; and once another orchestrator holds
 * the attempt's lease or wrote to its log (it took the attempt over from this one, which stopped
 * answering), no event of this one is written any more: the store's write is conditional on both
 * (`appendAttemptEvents` with a writer), not a read before it, so no takeover falls between.
 */
export class AttemptRecorder {
  private readonly sequence: AttemptEventSequence;
  private pending: AttemptEvent[] = [];
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly store: Store,
    private readonly attemptId: string,
    private readonly leaseOwner: string,
    private readonly listeners: ReadonlySet<AttemptEventListener>,
    now: () => Date = () => new Date(),
    /** The attempt's last stored event number (not 0 when it starts over after a restart). */
    lastSeq = 0,
  ) {
    this.sequence = new AttemptEventSequence(attemptId, now, lastSeq);
  }

  readonly emit = (body: AttemptEventBody): void => {
    const event = this.sequence.next(body);
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the log goes on.
      }
    }
    this.pending.push(event);
    this.writing = this.writing
      .then(() => this.flushPending())
      .catch((error: unknown) => {
        this.failure ??= error;
      });
  };

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    // Another orchestrator took the attempt over (this one stopped answering and its lease ran
    // out): it holds the lease now, or wrote to the log since. The store decides that in the
    // write itself (conditional on the lease and the log's end), so nothing more is written.
    if (this.lost) return;
    let written: boolean;
    try {
      written = await this.store.appendAttemptEvents(batch, { leaseOwner: this.leaseOwner });
    } catch (error) {
      // Not written (the store failed): kept in front for the next write, since the store takes
      // only the event right after the log's end.
      this.pending = [...batch, ...this.pending];
      throw error;
    }
    if (!written) {
      this.lost = true;
      return;
    }
    for (const event of batch) {
      if (event.type === 'phase' && !isTerminalPhase(event.phase)) {
        await this.store.updateAttempt(
          this.attemptId,
          { phase: event.phase },
          { leaseOwner: this.leaseOwner },
        );
      }
    }
  }

  private lost = false;

  /** Whether the attempt was taken over by another orchestrator (this one writes nothing more). */
  get takenOverElsewhere(): boolean {
    return this.lost;
  }

  /** Waits until every event so far is stored; throws the first write failure. */
  async flush(): Promise<void> {
    await this.writing;
    if (this.failure !== undefined) throw toBerthError(this.failure);
  }
}
