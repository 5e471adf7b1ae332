import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';
import type { TaskViewBody } from '../../server/api-schemas.js';
import { formatProgress } from '../../lifecycle/progress-format.js';
import {
  describeTask,
  followEvents,
  getTask,
  RAW_FLAG,
  RAW_HELP,
  statusPollDelayMs,
} from './task-command.js';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

/** `berth task followup TASK "prompt"`: a new turn from the picked attempt's snapshot. */
export function registerFollowUpCommand(task: Command, ctx: CliContext): void {
  withClientOptions(
    task
      .command('followup')
      .description(
        'continue the picked attempt: a new turn from its container state (it becomes the pick)',
      )
      .argument('<task>')
      .argument('[prompt]', 'what the agent is asked next')
      .option('--command <command>', 'run this command as the agent phase (instead of the agent)')
      .option(
        '--wait',
        'wait for the turn to finish, showing its progress; exit code 0 only if it succeeded',
      )
      .option(RAW_FLAG, RAW_HELP),
  ).action(
    async (
      taskId: string,
      prompt: string | undefined,
      options: ClientOptions & { command?: string; wait?: boolean },
    ) => {
      const client = ctx.client(options);
      const created = await client.call((api) =>
        api.POST('/v1/tasks/{id}/followup', {
          params: { path: { id: taskId } },
          body: {
            ...(prompt !== undefined ? { prompt } : {}),
            ...(options.command !== undefined ? { command: options.command } : {}),
          },
        }),
      );
      if (!options.wait) {
        if (options.json) ctx.json(created);
        else
          ctx.out(
            `follow-up ${created.attempt} queued on task ${created.id}; follow it with: berth task logs ${created.id} --follow (the latest turn)`,
          );
        return;
      }
      if (!options.json) ctx.err(`follow-up ${created.attempt} of task ${created.id}`);
      const write = ctx.streamTo(ctx.io.stderr);
      await followEvents(client, created.id, created.attempt, (event) => {
        if (!options.json) write(formatProgress(event, ''));
      });
      let view: TaskViewBody;
      for (let poll = 0; ; poll++) {
        view = await getTask(client, taskId);
        const turn = view.attempts.find((a) => a.id === created.attempt);
        if (turn && TERMINAL.has(turn.status)) break;
        await new Promise((r) => setTimeout(r, statusPollDelayMs(poll)));
      }
      const turn = view.attempts.find((a) => a.id === created.attempt);
      if (options.json) ctx.json({ ...view, attempt: created.attempt });
      else ctx.out(describeTask(view));
      if (turn?.status !== 'succeeded') ctx.exitCode = 1;
    },
  );
}
