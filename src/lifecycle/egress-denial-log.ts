import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { InternetPolicy } from '../domain/environment/environment-spec.js';
import {
  deniedHosts,
  denialLine,
  isDenial,
  MAX_DENIED_HOSTS,
  type DeniedHost,
  type EgressDenial,
} from '../domain/internet/egress-denial.js';

/**
 * The egress proxy's denials of one attempt, as its log receives them (`egress` events from
 * `onDecision`): for the agent's tool results (the lines of the denials while one command ran)
 * and for the attempt's results (`deniedHosts`). A sandbox can make any number of requests, so
 * both are bounded: distinct denials kept for the results, lines per command.
 *
 * A command's denials are those decided while it ran: a process the agent left running in the
 * background is counted to whichever command runs when it is denied.
 */

/** Lines one tool result ends with at most (then one line says how many more). */
export const MAX_DENIAL_LINES_PER_COMMAND = 20;

const keyOf = (d: EgressDenial) =>
  `${d.host}\n${d.rule === 'method' ? `method:${d.method}` : d.rule}`;

export class EgressDenialLog {
  private readonly kept = new Map<string, EgressDenial>();
  private readonly watches = new Set<{ lines: Set<string>; more: number }>();

  /** Feeds one event of the attempt's log; anything but an egress denial is ignored. */
  observe(event: AttemptEventBody): void {
    if (event.type !== 'egress' || event.allowed || !isDenial(event.rule)) return;
    const denial: EgressDenial = {
      host: event.host,
      port: event.port,
      method: event.method,
      scheme: event.scheme,
      rule: event.rule,
      reason: event.reason,
    };
    const key = keyOf(denial);
    if (!this.kept.has(key) && this.kept.size < MAX_DENIED_HOSTS) this.kept.set(key, denial);
    if (this.watches.size === 0) return;
    const line = denialLine(denial);
    for (const watch of this.watches) {
      if (watch.lines.has(line)) continue;
      if (watch.lines.size < MAX_DENIAL_LINES_PER_COMMAND) watch.lines.add(line);
      else watch.more += 1;
    }
  }

  /** Starts watching for one command; `end()` gives the lines of its denials, once each. */
  watch(): { end(): string[] } {
    const watch = { lines: new Set<string>(), more: 0 };
    this.watches.add(watch);
    return {
      end: () => {
        this.watches.delete(watch);
        const lines = [...watch.lines];
        if (watch.more > 0) lines.push(`berth egress: ${watch.more} more denials not listed`);
        return lines;
      },
    };
  }

  /** The denied hosts with the change to the environment file that would allow each. */
  deniedHosts(internet: InternetPolicy): DeniedHost[] {
    return deniedHosts(this.kept.values(), internet);
  }
}
