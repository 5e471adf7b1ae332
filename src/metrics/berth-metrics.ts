import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import { isTerminalPhase, type AttemptPhase } from '../domain/task/attempt-phase.js';
import type {
  AttemptObserver,
  ClaimedAttempt,
  FinishedAttempt,
} from '../lifecycle/attempt-observer.js';

/**
 * Berth's Prometheus metrics (issue 17 item 4), in one registry that `GET /metrics` serves in the
 * text format. Names follow Prometheus' conventions: the `berth_` prefix, the unit in the name
 * (`_seconds`, `_tokens`), `_total` on counters. They are fed where the events already happen:
 * the scheduler's attempt observer (claims, the attempt log's phase, cache and egress events,
 * ends with their tokens), and, when scraped, the engine's running sandboxes and the scheduler's
 * running attempts. docs/operations.md lists them with example alerts.
 */

/** Queue waits and phases run from a fraction of a second (a cache hit) to hours (an agent). */
const DURATION_BUCKETS_SECONDS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

export interface BerthMetricsOptions {
  /** This node's name (the `node` label of the node figures). */
  node: string;
  /** How many attempts this node runs at once (`BERTH_CONCURRENCY`). */
  capacityAttempts: number;
  /** How many attempts it runs now. */
  runningAttempts?: () => number;
  /** How many sandboxes of this instance are running on the engine (read at each scrape). */
  runningSandboxes?: () => Promise<number>;
  /** Adds Node's process metrics (`process_*`, `nodejs_*`); default true. */
  processMetrics?: boolean;
  /** For tests: the clock phase durations are measured with (ms). */
  nowMs?: () => number;
}

export class BerthMetrics implements AttemptObserver {
  readonly registry = new Registry();
  private readonly nowMs: () => number;
  /** The phase each running attempt is in, and since when. */
  private readonly phases = new Map<string, { phase: AttemptPhase; sinceMs: number }>();

  private readonly attemptsFinished = new Counter({
    name: 'berth_attempts_finished_total',
    help: 'Attempts that ended, by outcome (succeeded, failed, cancelled) and the phase they were in last',
    labelNames: ['outcome', 'phase'] as const,
    registers: [this.registry],
  });
  private readonly attemptsStarted = new Counter({
    name: 'berth_attempts_started_total',
    help: 'Attempts this node claimed from the queue and started',
    registers: [this.registry],
  });
  private readonly queueWait = new Histogram({
    name: 'berth_attempt_queue_wait_seconds',
    help: 'Time from an attempt being queued to a node claiming it',
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  private readonly phaseDuration = new Histogram({
    name: 'berth_attempt_phase_duration_seconds',
    help: 'Time attempts spent in each phase (creating, setup, maintenance, services, lockdown, agent, results)',
    labelNames: ['phase'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  private readonly cacheHits = new Counter({
    name: 'berth_cache_hits_total',
    help: 'Attempts that started from a live cache entry',
    registers: [this.registry],
  });
  private readonly cacheMisses = new Counter({
    name: 'berth_cache_misses_total',
    help: 'Attempts that found no live cache entry for their key',
    registers: [this.registry],
  });
  private readonly cacheBuilds = new Counter({
    name: 'berth_cache_builds_total',
    help: 'Cache entries built and committed (setup ran)',
    registers: [this.registry],
  });
  private readonly cacheWaits = new Counter({
    name: 'berth_cache_waits_total',
    help: "Attempts that waited for another attempt's build of their cache entry and used it",
    registers: [this.registry],
  });
  private readonly egressRequests = new Counter({
    name: 'berth_egress_requests_total',
    help: "The egress proxy's decisions on sandbox requests, allowed or denied",
    labelNames: ['decision'] as const,
    registers: [this.registry],
  });
  private readonly modelTokens = new Counter({
    name: 'berth_model_tokens_total',
    help: 'Model tokens of finished attempts, by direction (input: prompt, output: completion)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  constructor(private readonly options: BerthMetricsOptions) {
    this.nowMs = options.nowMs ?? (() => performance.now());
    const node = options.node;
    new Gauge({
      name: 'berth_node_capacity_attempts',
      help: 'How many attempts the node runs at once (BERTH_CONCURRENCY)',
      labelNames: ['node'] as const,
      registers: [this.registry],
      collect() {
        this.set({ node }, options.capacityAttempts);
      },
    });
    new Gauge({
      name: 'berth_node_attempts_running',
      help: 'Attempts the node runs now',
      labelNames: ['node'] as const,
      registers: [this.registry],
      collect() {
        this.set({ node }, options.runningAttempts?.() ?? 0);
      },
    });
    const runningSandboxes = options.runningSandboxes;
    if (runningSandboxes !== undefined) {
      // One engine call per scrape for both gauges (prom-client collects them side by side).
      let reading: { at: number; count: Promise<number | undefined> } | undefined;
      const read = () => {
        if (reading === undefined || Date.now() - reading.at > 1_000)
          reading = {
            at: Date.now(),
            count: runningSandboxes().then(
              (count) => count,
              () => undefined,
            ),
          };
        return reading.count;
      };
      new Gauge({
        name: 'berth_sandboxes_running',
        help: "Sandboxes of this Berth running on the node's engine (attempts' and warm ones); NaN when the engine did not answer",
        registers: [this.registry],
        async collect() {
          // The engine unreachable: no figure rather than a made-up 0.
          this.set((await read()) ?? Number.NaN);
        },
      });
      new Gauge({
        name: 'berth_engine_up',
        help: "1 when the node's container engine answered this scrape, else 0",
        registers: [this.registry],
        async collect() {
          this.set((await read()) === undefined ? 0 : 1);
        },
      });
    }
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    for (const decision of ['allowed', 'denied']) this.egressRequests.inc({ decision }, 0);
    for (const direction of ['input', 'output']) this.modelTokens.inc({ direction }, 0);
  }

  /** The text `GET /metrics` answers, and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  claimed(attempt: ClaimedAttempt): void {
    this.attemptsStarted.inc();
    const waitMs = Date.parse(attempt.claimedAt) - Date.parse(attempt.queuedAt);
    if (Number.isFinite(waitMs)) this.queueWait.observe(Math.max(0, waitMs) / 1000);
  }

  event(attemptId: string, event: AttemptEventBody): void {
    switch (event.type) {
      case 'phase':
        this.enterPhase(attemptId, event.phase);
        return;
      case 'cache':
        if (event.result === 'hit') this.cacheHits.inc();
        else if (event.result === 'miss') this.cacheMisses.inc();
        else if (event.result === 'built') this.cacheBuilds.inc();
        else this.cacheWaits.inc();
        return;
      case 'egress':
        this.egressRequests.inc({ decision: event.allowed ? 'allowed' : 'denied' });
        return;
      default:
        return;
    }
  }

  finished(attempt: FinishedAttempt): void {
    this.closePhase(attempt.attemptId);
    this.phases.delete(attempt.attemptId);
    this.attemptsFinished.inc({ outcome: attempt.outcome, phase: attempt.lastPhase });
    if (attempt.tokens !== undefined) {
      this.modelTokens.inc({ direction: 'input' }, attempt.tokens.input);
      this.modelTokens.inc({ direction: 'output' }, attempt.tokens.output);
    }
  }

  private enterPhase(attemptId: string, phase: AttemptPhase): void {
    this.closePhase(attemptId);
    // Ended, or back in the queue (its orchestrator stopped): no phase of its own runs here.
    if (isTerminalPhase(phase) || phase === 'queued') this.phases.delete(attemptId);
    else this.phases.set(attemptId, { phase, sinceMs: this.nowMs() });
  }

  private closePhase(attemptId: string): void {
    const current = this.phases.get(attemptId);
    if (current === undefined) return;
    this.phaseDuration.observe(
      { phase: current.phase },
      Math.max(0, this.nowMs() - current.sinceMs) / 1000,
    );
    this.phases.delete(attemptId);
  }
}
