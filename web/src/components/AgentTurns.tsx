import type { AttemptEvent } from '../api/types';
import { duration } from '../format';

/**
 * The agent's turns from an attempt's events: per turn the model's message, its tool calls with
 * their arguments and results (exit codes), and plan updates. All of it is text from the model or
 * the sandbox, shown as text.
 */

const text = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));

function Plan({ event }: { event: AttemptEvent }) {
  const steps = Array.isArray(event.plan)
    ? (event.plan as { step?: unknown; status?: unknown }[])
    : [];
  return (
    <div className="plan">
      <strong>Plan</strong>
      {typeof event.explanation === 'string' && <p>{event.explanation}</p>}
      <ul>
        {steps.map((step, i) => (
          <li key={i}>
            [{text(step.status)}] {text(step.step)}
          </li>
        ))}
      </ul>
    </div>
  );
}

export function AgentTurns({ events }: { events: readonly AttemptEvent[] }) {
  const relevant = events.filter((e) =>
    ['agent_turn', 'tool_call', 'tool_result', 'plan', 'agent_end'].includes(e.type),
  );
  if (relevant.length === 0)
    return <p className="sub">No agent turns (a command task, or not started).</p>;
  return (
    <ol className="turns" aria-label="Agent turns">
      {relevant.map((event) => {
        switch (event.type) {
          case 'agent_turn':
            return (
              <li key={event.seq} className="turn">
                <strong>Turn {text(event.turn)}</strong>{' '}
                <span className="sub">
                  {text(event.finishReason)} · {duration(Number(event.durationMs))}
                </span>
                {typeof event.content === 'string' && event.content !== '' && (
                  <pre className="turn-message">{event.content}</pre>
                )}
              </li>
            );
          case 'tool_call':
            return (
              <li key={event.seq} className="tool-call">
                → <code>{text(event.tool)}</code>{' '}
                <code className="args">{text(event.arguments)}</code>
              </li>
            );
          case 'tool_result':
            return (
              <li key={event.seq} className="tool-result">
                <details>
                  <summary>
                    ← {text(event.tool)} {event.ok ? 'ok' : 'failed'}
                    {typeof event.exitCode === 'number' ? ` · exit ${event.exitCode}` : ''}
                    {event.timedOut ? ' · timed out' : ''}
                  </summary>
                  <pre className="output">{text(event.output)}</pre>
                </details>
              </li>
            );
          case 'plan':
            return (
              <li key={event.seq}>
                <Plan event={event} />
              </li>
            );
          default:
            return (
              <li key={event.seq} className="sub">
                Agent ended: {text(event.reason)} after {text(event.turns)} turns
              </li>
            );
        }
      })}
    </ol>
  );
}
