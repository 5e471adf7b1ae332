import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';

/** `berth task pr TASK [--title T] [--draft]`: the server pushes the picked diff and opens the PR. */
export function registerPrCommand(task: Command, ctx: CliContext): void {
  withClientOptions(
    task
      .command('pr')
      .description(
        "push the picked attempt's diff as branch berth/<task> and, for GitHub, open (or update) a pull request",
      )
      .argument('<task>')
      .option('--title <title>', "the pull request's title (default: the prompt's first line)")
      .option('--draft', 'open it as a draft')
      .option(
        '--allow-workflows',
        'push even when the diff adds or changes .github/workflows/ (they run on push, before review)',
      ),
  ).action(
    async (
      taskId: string,
      options: ClientOptions & { title?: string; draft?: boolean; allowWorkflows?: boolean },
    ) => {
      const result = await ctx.client(options).call((api) =>
        api.POST('/v1/tasks/{id}/pr', {
          params: { path: { id: taskId } },
          body: {
            ...(options.title !== undefined ? { title: options.title } : {}),
            ...(options.draft ? { draft: true } : {}),
            ...(options.allowWorkflows ? { allowWorkflows: true } : {}),
          },
        }),
      );
      if (options.json) return ctx.json(result);
      if (result.pullRequest === null) {
        ctx.err(
          `pushed ${result.commit.slice(0, 12)} (attempt ${result.attempt}) to ${result.remote}; not a GitHub remote, so no pull request`,
        );
        ctx.out(result.branch);
        return;
      }
      ctx.err(
        `pushed ${result.branch} (attempt ${result.attempt}); pull request #${result.pullRequest.number} ${result.pullRequest.created ? 'opened' : 'updated'}`,
      );
      ctx.out(result.pullRequest.url);
    },
  );
}
