import {
  USAGE_GROUPINGS,
  type UsageGroup,
  type UsageGrouping,
} from '../domain/usage/attempt-usage.js';
import { BerthError } from '../errors/berth-error.js';
import type { Store } from '../ports/store.js';
import type { Caller } from '../services/caller.js';
import type { EnvironmentService } from '../services/environment-service.js';
import { parseInstant } from './usage-range.js';

/**
 * The usage report (`GET /v1/usage`, `berth usage`): the attempts that finished in [from, to),
 * added up by environment, token or UTC day. An admin sees every environment's; any other token
 * the environments it may see (its own and those it is a member of). Without `from` the report
 * covers the 7 days before `to` (default: now).
 */

export interface UsageQuery {
  from?: string | undefined;
  to?: string | undefined;
  by?: string | undefined;
}

export interface UsageReportGroup extends UsageGroup {
  /** The environment's name, when grouped by environment and it still exists. */
  name?: string;
}

export interface UsageReport {
  from: string;
  to: string;
  by: UsageGrouping;
  groups: UsageReportGroup[];
  total: Omit<UsageGroup, 'key'>;
}

const DEFAULT_DAYS = 7;

function instant(name: 'from' | 'to', text: string): Date {
  const date = parseInstant(text);
  if (date === undefined)
    throw new BerthError(
      'invalid_input',
      `${name} "${text}" is not a time: give a UTC date (2026-12-01) or an ISO-8601 time with its zone (2026-12-01T09:00:00Z)`,
      { [name]: text },
    );
  return date;
}

export class UsageService {
  constructor(
    private readonly options: {
      store: Pick<Store, 'summarizeUsage'>;
      environments: Pick<EnvironmentService, 'list'>;
      now?: () => Date;
    },
  ) {}

  async report(caller: Caller, query: UsageQuery): Promise<UsageReport> {
    const by = query.by ?? 'environment';
    if (!(USAGE_GROUPINGS as readonly string[]).includes(by))
      throw new BerthError(
        'invalid_input',
        `by "${by}" is not a grouping: give ${USAGE_GROUPINGS.join(', ')}`,
        { by },
      );
    const to =
      query.to !== undefined ? instant('to', query.to) : (this.options.now?.() ?? new Date());
    const from =
      query.from !== undefined
        ? instant('from', query.from)
        : new Date(to.getTime() - DEFAULT_DAYS * 86_400_000);
    if (from.getTime() >= to.getTime())
      throw new BerthError('invalid_input', 'from must be before to', {
        from: from.toISOString(),
        to: to.toISOString(),
      });
    const visible = await this.options.environments.list(caller);
    const names = new Map(visible.map((environment) => [environment.id, environment.spec.name]));
    const groups = await this.options.store.summarizeUsage({
      from: from.toISOString(),
      to: to.toISOString(),
      by: by as UsageGrouping,
      ...(caller.admin ? {} : { environmentIds: [...names.keys()] }),
    });
    const total = {
      attempts: 0,
      inputTokens: 0,
      outputTokens: 0,
      cpuSeconds: 0,
      peakMemoryBytes: 0,
      wallSeconds: 0,
    };
    for (const group of groups) {
      total.attempts += group.attempts;
      total.inputTokens += group.inputTokens;
      total.outputTokens += group.outputTokens;
      total.cpuSeconds += group.cpuSeconds;
      total.peakMemoryBytes = Math.max(total.peakMemoryBytes, group.peakMemoryBytes);
      total.wallSeconds += group.wallSeconds;
    }
    total.cpuSeconds = Math.round(total.cpuSeconds * 1000) / 1000;
    total.wallSeconds = Math.round(total.wallSeconds * 1000) / 1000;
    return {
      from: from.toISOString(),
      to: to.toISOString(),
      by: by as UsageGrouping,
      groups: groups.map((group) => {
        const name = by === 'environment' ? names.get(group.key) : undefined;
        return name !== undefined ? { ...group, name } : group;
      }),
      total,
    };
  }
}
