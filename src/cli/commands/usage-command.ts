import { Option, type Command } from 'commander';
import { formatTable, type CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';
import { parseSince } from '../../usage/usage-range.js';

/** `berth usage`: what the finished attempts used (GET /v1/usage), by environment, token or day. */

interface UsageFigures {
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  cpuSeconds: number;
  peakMemoryBytes: number;
  wallSeconds: number;
}

interface UsageReport {
  from: string;
  to: string;
  by: 'environment' | 'token' | 'day';
  groups: (UsageFigures & { key: string; name?: string })[];
  total: UsageFigures;
}

function mib(bytes: number): string {
  return bytes === 0 ? '-' : `${Math.round(bytes / (1024 * 1024))} MiB`;
}

function row(key: string, figures: UsageFigures): Record<string, string> {
  return {
    key,
    attempts: String(figures.attempts),
    'tokens in': String(figures.inputTokens),
    'tokens out': String(figures.outputTokens),
    'cpu s': figures.cpuSeconds.toFixed(1),
    'peak memory': mib(figures.peakMemoryBytes),
    'wall s': figures.wallSeconds.toFixed(1),
  };
}

export function registerUsageCommand(program: Command, ctx: CliContext): void {
  withClientOptions(
    program
      .command('usage')
      .description(
        'what the finished attempts used: model tokens, sandbox CPU and peak memory, wall time',
      )
      .addOption(
        new Option('--by <grouping>', 'add up by environment, token or day (UTC)')
          .choices(['environment', 'token', 'day'])
          .default('environment'),
      )
      .option(
        '--since <when>',
        'from when: a duration back from now (30m, 24h, 7d, 2w), a UTC date or an ISO-8601 time',
        '7d',
      ),
  ).action(async (options: ClientOptions & { by: string; since: string }) => {
    // Refused before any request: `--since yesterday-ish` names the forms that are taken.
    const from = parseSince(options.since, new Date());
    const query = new URLSearchParams({ from: from.toISOString(), by: options.by });
    const report = await ctx
      .client(options)
      .request<UsageReport>('GET', `/v1/usage?${query.toString()}`);
    if (options.json) return ctx.json(report);
    const column = report.by === 'environment' ? 'environment' : report.by;
    ctx.out(`usage of the attempts that finished from ${report.from} to ${report.to}`);
    if (report.groups.length === 0) {
      ctx.out('no attempt finished then');
      return;
    }
    const rows = report.groups.map((group) => {
      const { key, ...figures } = row(group.name ?? group.key, group);
      return { [column]: key ?? '', ...figures };
    });
    rows.push({ [column]: 'total', ...(({ key: _key, ...rest }) => rest)(row('', report.total)) });
    ctx.out(
      formatTable(rows, [
        column,
        'attempts',
        'tokens in',
        'tokens out',
        'cpu s',
        'peak memory',
        'wall s',
      ]),
    );
  });
}
