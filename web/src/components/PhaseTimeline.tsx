import type { Attempt, AttemptEvent } from '../api/types';
import { duration } from '../format';

/** The attempt's phases in order, each with its duration (and the cache result for setup). */
export function phaseSteps(events: readonly AttemptEvent[], attempt: Attempt, now: number) {
  const phases = events.filter((e) => e.type === 'phase' && typeof e.phase === 'string');
  const cache = events.find((e) => e.type === 'cache');
  return phases.map((event, i) => {
    const phase = String(event.phase);
    const start = Date.parse(event.at);
    const next = phases[i + 1];
    const terminal = ['succeeded', 'failed', 'cancelled'].includes(phase);
    const end = next
      ? Date.parse(next.at)
      : terminal
        ? start
        : attempt.finishedAt
          ? Date.parse(attempt.finishedAt)
          : now;
    const note =
      (phase === 'setup' || phase === 'maintenance') && cache
        ? `cache ${String(cache.result)}${typeof cache.reason === 'string' ? `: ${cache.reason}` : ''}`
        : '';
    return { phase, ms: terminal ? null : end - start, note, current: !next && !terminal };
  });
}

export function PhaseTimeline({
  events,
  attempt,
}: {
  events: readonly AttemptEvent[];
  attempt: Attempt;
}) {
  const steps = phaseSteps(events, attempt, Date.now());
  if (steps.length === 0) return <p className="sub">No phases yet.</p>;
  return (
    <ol className="timeline" aria-label="Phases">
      {steps.map((step, i) => (
        <li key={i} className={`step step-${step.phase}${step.current ? ' current' : ''}`}>
          <span className="step-name">{step.phase}</span>
          <span className="step-time">{step.ms === null ? '' : duration(step.ms)}</span>
          {step.note && <span className="sub"> {step.note}</span>}
        </li>
      ))}
    </ol>
  );
}
