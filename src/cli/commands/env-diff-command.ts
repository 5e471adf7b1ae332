import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import type { CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';
import type { RepositoryFileField } from '../../lifecycle/repository-config-now.js';

/**
 * `berth env diff NAME [--branch B]` (issue 16 item 5): the stored environment against the
 * repository's file (`repository.config`), field by field: `=` the same in both, `<` only in the
 * stored environment, `>` only in the file, `!` in both and different (the environment's wins).
 */

interface DiffView {
  path: string;
  branch: string;
  commit: string;
  fields: RepositoryFileField[];
}

const MARK = { same: '=', environment: '<', file: '>', both: '!' } as const;

function indented(value: unknown, prefix: string): string {
  return toYaml(value)
    .trimEnd()
    .split('\n')
    .map((line) => `${prefix}${line}`)
    .join('\n');
}

export function registerEnvDiffCommand(env: Command, ctx: CliContext): void {
  withClientOptions(
    env
      .command('diff')
      .description("the stored environment against the repository's file (repository.config)")
      .argument('<env>', 'environment name')
      .option('--branch <branch>', 'read the file on this branch (default: the default branch)'),
  ).action(async (name: string, options: ClientOptions & { branch?: string }) => {
    const query =
      options.branch === undefined ? '' : `?branch=${encodeURIComponent(options.branch)}`;
    const view = await ctx
      .client(options)
      .request<DiffView>('GET', `/v1/environments/${encodeURIComponent(name)}/diff${query}`);
    if (options.json) return ctx.json(view);
    ctx.out(
      `${name} (stored, <) against ${view.path} on ${view.branch} at ${view.commit.slice(0, 12)} (>)`,
    );
    if (view.fields.length === 0) return ctx.out('no fields in either');
    for (const f of view.fields) {
      const note =
        f.state === 'both'
          ? " (the environment's wins)"
          : f.state === 'file'
            ? ' (from the file)'
            : f.state === 'environment'
              ? ' (not in the file)'
              : '';
      ctx.out(`${MARK[f.state]} ${f.field}${note}`);
      if (f.state === 'both' || f.state === 'environment')
        ctx.out(indented(f.environment, '    < '));
      if (f.state === 'both' || f.state === 'file') ctx.out(indented(f.file, '    > '));
    }
  });
}
