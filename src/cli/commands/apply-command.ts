import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';
import { applyDiff } from '../../git/apply-diff.js';
import { BerthError } from '../../errors/berth-error.js';
import { fetchDiff, wholeChangeNote } from '../turns.js';

/**
 * `berth task apply TASK [--attempt A]`: the picked (or given) attempt's diff applied to the git
 * checkout the command runs in, on this machine (see src/git/apply-diff.ts for the rules).
 */
export function registerApplyCommand(task: Command, ctx: CliContext): void {
  withClientOptions(
    task
      .command('apply')
      .description(
        "apply the picked (or given) attempt's diff to the git checkout you are in (three-way where possible)",
      )
      .argument('<task>')
      .option(
        '--attempt <attempt>',
        'which attempt (default: the picked one; a lone attempt is picked already)',
      ),
  ).action(async (taskId: string, options: ClientOptions & { attempt?: string }) => {
    const { view, chain } = await fetchDiff(ctx.client(options), taskId, options.attempt);
    // After follow-ups, what is applied is the whole change since the base, not the last turn.
    const whole = wholeChangeNote(chain, taskId);
    if (view.baseCommit === null) {
      throw new BerthError(
        'invalid_input',
        `attempt ${view.attempt} has no result to apply (it did not get to its results)`,
      );
    }
    const secretFiles = view.secretFiles ?? [];
    if (secretFiles.length > 0) {
      throw new BerthError(
        'invalid_input',
        `attempt ${view.attempt}'s diff holds a secret value of the environment in ${secretFiles.join(', ')} (masked in the diff); it is not applied. Keep credentials out of the repository's working tree (a file outside it, or a .gitignore entry), then run the task again. Nothing was changed`,
        { attempt: view.attempt, secretFiles },
      );
    }
    if (view.diff === '') {
      if (options.json) ctx.json({ attempt: view.attempt, applied: false, reason: 'empty diff' });
      else ctx.out(`attempt ${view.attempt} changed nothing; nothing to apply`);
      return;
    }
    const outcome = await applyDiff({
      cwd: process.cwd(),
      diff: view.diff,
      baseCommit: view.baseCommit,
    });
    const already = outcome.mode === 'already-applied';
    if (options.json)
      return ctx.json({
        attempt: view.attempt,
        applied: !already,
        ...(already ? { reason: 'already applied' } : {}),
        root: outcome.root,
        mode: outcome.mode,
        turns: chain.length,
      });
    const what = `attempt ${view.attempt}${whole !== undefined ? ` (${whole})` : ''}`;
    ctx.out(
      already
        ? `${what} is already applied in ${outcome.root}: its change is there; nothing was changed`
        : outcome.mode === 'clean'
          ? `applied ${what} to ${outcome.root} (working tree; review with git diff)`
          : `applied ${what} to ${outcome.root} with a three-way merge (staged; review with git diff --cached)`,
    );
  });
}
