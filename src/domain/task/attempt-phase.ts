/**
 * The phases of an attempt, in the order DESIGN §2 makes a contract. An attempt moves forward
 * only; `setup` and `maintenance` are alternatives (cold start or resume from a cache entry), and
 * any live phase may end in `failed` or `cancelled`.
 */
export const ATTEMPT_PHASES = [
  'queued',
  'creating',
  'setup',
  'maintenance',
  'services',
  'lockdown',
  'agent',
  'results',
  'succeeded',
  'failed',
  'cancelled',
] as const;

export type AttemptPhase = (typeof ATTEMPT_PHASES)[number];

export const TERMINAL_PHASES = ['succeeded', 'failed', 'cancelled'] as const;
export type TerminalPhase = (typeof TERMINAL_PHASES)[number];

export function isTerminalPhase(phase: AttemptPhase): phase is TerminalPhase {
  return (TERMINAL_PHASES as readonly string[]).includes(phase);
}

export function isAttemptPhase(value: unknown): value is AttemptPhase {
  return typeof value === 'string' && (ATTEMPT_PHASES as readonly string[]).includes(value);
}

const ORDER: Record<AttemptPhase, number> = {
  queued: 0,
  creating: 1,
  setup: 2,
  maintenance: 2,
  services: 3,
  lockdown: 4,
  agent: 5,
  results: 6,
  succeeded: 7,
  failed: 7,
  cancelled: 7,
};

/** Whether an attempt in `from` may move to `to`. */
export function canMovePhase(from: AttemptPhase, to: AttemptPhase): boolean {
  if (isTerminalPhase(from)) return false;
  if (to === 'failed' || to === 'cancelled') return true;
  // `succeeded` only after the results were gathered.
  if (to === 'succeeded') return from === 'results';
  return ORDER[to] > ORDER[from];
}
