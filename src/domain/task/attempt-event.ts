import type { AttemptPhase } from './attempt-phase.js';

/**
 * The typed events of an attempt's log, in the order they happened. Every text in an event has
 * had secret values masked before the event was made.
 */
export type AttemptEventBody =
  | { type: 'phase'; phase: AttemptPhase }
  | { type: 'log'; stream: 'stdout' | 'stderr' | 'system'; text: string }
  | {
      type: 'command';
      command: string;
      exitCode: number;
      output: string;
      phase: AttemptPhase;
      durationMs: number;
      /** Killed by the sandbox's memory limit (`resources.memoryMb`). */
      outOfMemory?: boolean;
    }
  | {
      /** A command of the agent phase started (`command` follows when it ends). */
      type: 'command_start';
      command: string;
      phase: AttemptPhase;
    }
  | {
      /** The files changed so far while the agent runs (live-changes.ts); the results' list is final. */
      type: 'files';
      files: { path: string; added: number | null; removed: number | null; binary: boolean }[];
      /** How many files changed (`files` holds at most 200 of them). */
      total: number;
    }
  | { type: 'warning'; message: string; details?: Record<string, unknown> }
  | {
      type: 'cache';
      result: 'hit' | 'miss' | 'built' | 'waited';
      reason: string;
      key?: string;
      image?: string;
    }
  | { type: 'error'; code: string; message: string; details?: Record<string, unknown> }
  | {
      /** One decision of the egress proxy (agent phase, policies `allowlist` and `on`). */
      type: 'egress';
      host: string;
      port: number;
      method: string;
      /** `connect` (a tunnel), `http` (plain HTTP), `https` (a request inside an intercepted tunnel). */
      scheme: string;
      allowed: boolean;
      rule: string;
      reason: string;
    };

export type AttemptEventType = AttemptEventBody['type'];

export type AttemptEvent = AttemptEventBody & {
  attemptId: string;
  /** Position in the attempt's log, from 1. */
  seq: number;
  at: string;
};

/** Numbers events and stamps them with a time; one per attempt. */
export class AttemptEventSequence {
  constructor(
    private readonly attemptId: string,
    private readonly now: () => Date = () => new Date(),
    /** The last number already used (an attempt started over after a restart goes on from it). */
    private seq = 0,
  ) {}

  next(body: AttemptEventBody): AttemptEvent {
    this.seq += 1;
    return { ...body, attemptId: this.attemptId, seq: this.seq, at: this.now().toISOString() };
  }
}
