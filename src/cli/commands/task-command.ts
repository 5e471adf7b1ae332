import type { Command } from 'commander';
import { formatTable, type CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';
import { agentLimitsFrom, withAgentOptions, type AgentFlags } from '../agent-options.js';
import type { ApiClient } from '../api-client.js';
import type { AttemptViewBody, TaskViewBody } from '../../server/api-schemas.js';
import type { AttemptEvent } from '../../domain/task/attempt-event.js';
import { formatProgress } from '../../lifecycle/progress-format.js';
import { BerthError } from '../../errors/berth-error.js';
import { isFinalStatus } from '../../domain/task/status-words.js';
import { taskExitCode, VERIFY_FAILED_EXIT_CODE } from '../../domain/task/task-exit-code.js';
import { inertJson, inertText, isTerminal } from '../terminal-text.js';
import { attemptPrefix, followedAttempts, wholeLines } from '../followed-attempts.js';
import { registerApplyCommand } from './apply-command.js';
import { fetchDiff, TURN_HELP } from '../turns.js';
import { registerPrCommand } from './pr-command.js';
import { registerFollowUpCommand } from './followup-command.js';

/** `berth exec` and `berth task …`: tasks on a server. */

/** How long `task cancel` waits for the attempts to stop before printing the status. */
const CANCEL_WAIT_MS = 30_000;

/** `--raw` on every command that prints text from a sandbox (see terminal-text.ts). */
export const RAW_FLAG = '--raw';
export const RAW_HELP =
  'print text from the sandbox as it is, control characters included (else shown as \\x1b, …)';

/** GET /v1/tasks/{id}: the task, with its attempts. */
export async function getTask(client: ApiClient, id: string): Promise<TaskViewBody> {
  return await client.call((api) => api.GET('/v1/tasks/{id}', { params: { path: { id } } }));
}

/** POST /v1/tasks/{id}/cancel: the task as the cancel left it. */
async function cancelTask(client: ApiClient, id: string): Promise<TaskViewBody> {
  return await client.call((api) =>
    api.POST('/v1/tasks/{id}/cancel', { params: { path: { id } } }),
  );
}

function seconds(ms: number | null): string {
  return ms === null ? '-' : `${(ms / 1000).toFixed(1)}s`;
}

export function describeTask(task: TaskViewBody): string {
  const lines = [
    `task ${task.id}: ${task.status}`,
    `environment: ${task.environment}${task.branch ? `, branch ${task.branch}` : ''}${task.sha ? `, sha ${task.sha}` : ''}`,
    task.command !== null ? `command: ${task.command}` : `prompt: ${task.prompt}`,
    '',
    formatTable(
      task.attempts.map((a) => ({
        picked: a.id === task.picked ? '*' : '',
        attempt: a.id,
        status: a.status,
        phase: a.phase,
        cache: a.cacheHit === null ? '-' : a.cacheHit ? 'hit' : 'built',
        files: String(a.filesChanged),
        lines: `+${a.linesAdded} -${a.linesRemoved}`,
        verify:
          a.verification === null
            ? '-'
            : a.verification.passed
              ? 'passed'
              : `failed (${a.verification.exitCode})`,
        time: seconds(a.durationMs),
        tokens: a.tokens === null ? '-' : String(a.tokens),
      })),
      [
        'picked',
        'attempt',
        'status',
        'phase',
        'cache',
        'files',
        'lines',
        'verify',
        'time',
        'tokens',
      ],
    ),
  ];
  if (task.attempts.length > 1) {
    lines.push(
      '',
      task.picked !== null
        ? `picked: ${task.picked}`
        : `none picked yet: berth task pick ${task.id} ATTEMPT`,
    );
  }
  for (const a of task.attempts) {
    if (a.followUpOf !== null)
      lines.push('', `${a.id} follows up ${a.followUpOf}: ${a.request ?? ''}`);
    // The attempt's status word (a cancelled attempt is `cancelled`, not failed), then why.
    if (a.error) lines.push('', `${a.id} ${a.status}: ${a.error}`);
    else if (a.message) lines.push('', `${a.id}: ${a.message}`);
  }
  for (const a of task.attempts) {
    if (a.deniedHosts.length === 0) continue;
    lines.push(
      '',
      `${a.id}: the egress proxy denied (each with the change to the environment file that would allow it; review it, Berth applies none):`,
    );
    for (const d of a.deniedHosts)
      lines.push(`  ${d.method} ${d.host}: ${d.reason}`, `    suggestion: ${d.suggestion}`);
  }
  return lines.join('\n');
}

/** Reads a server-sent event stream of an attempt, calling back per event; resolves at its end. */
export async function followEvents(
  client: ApiClient,
  taskId: string,
  attemptId: string,
  onEvent: (event: AttemptEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const response = await client.stream(taskId, attemptId, signal);
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trimStart();
      }
      if (type === 'end') return;
      if (data !== '') onEvent(JSON.parse(data) as AttemptEvent);
    }
  }
}

/** `--require-verify` on `exec --wait` and `run`: a failed verification fails the command. */
export const REQUIRE_VERIFY_FLAG = '--require-verify';

/**
 * Whether the verification decides the exit code: `--require-verify`, or the environment's
 * `verifyRequired: true`. Either is refused for an environment without a `verify` command.
 */
async function verifyRequired(
  client: ApiClient,
  environment: string,
  flag: boolean,
): Promise<boolean> {
  const view = await client.call((api) =>
    api.GET('/v1/environments/{name}', { params: { path: { name: environment } } }),
  );
  if (flag && view.spec.verify === undefined) {
    throw new BerthError(
      'invalid_input',
      `${REQUIRE_VERIFY_FLAG}: environment "${environment}" has no verify command (add "verify: …" to it)`,
    );
  }
  return flag || view.spec.verifyRequired === true;
}

/** Waits for a task to finish, printing each attempt's progress to stderr as it happens. */
export async function waitForTask(
  ctx: CliContext,
  client: ApiClient,
  task: TaskViewBody,
  quiet: boolean,
): Promise<TaskViewBody> {
  const many = task.attempts.length > 1;
  await Promise.all(
    task.attempts.map(async (attempt: AttemptViewBody) => {
      const write = ctx.streamTo(ctx.io.stderr);
      const prefix = attemptPrefix(attempt, many);
      // Several attempts print together: each one's lines whole, so none is cut by another's.
      const lines = many ? wholeLines() : undefined;
      const print = (event: AttemptEvent) => {
        if (!quiet) write(formatProgress(event, prefix));
      };
      await followEvents(client, task.id, attempt.id, (event) =>
        (lines ? lines.push(event) : [event]).forEach(print),
      );
      lines?.flush().forEach(print);
    }),
  );
  // The task's status can lag its attempts' streams by a moment: poll at once, then tightly for
  // that moment (25 ms), backing off to 200 ms for a task that stays open longer (a few requests
  // in the first half second, then five a second, as before).
  for (let poll = 0; ; poll++) {
    const current = await getTask(client, task.id);
    if (isFinalStatus(current.status)) return current;
    await new Promise((r) => setTimeout(r, statusPollDelayMs(poll)));
  }
}

/** Milliseconds before the next task-status poll after `poll` polls: 25, 25, 25, 25, 50, 100, 200, 200, … */
export function statusPollDelayMs(poll: number): number {
  return poll < 4 ? 25 : Math.min(200, 25 * 2 ** (poll - 3));
}

export function registerExecCommand(program: Command, ctx: CliContext): void {
  const exec = withClientOptions(
    program
      .command('exec')
      .description('run a task on a server: a prompt for the agent, or --command')
      .requiredOption('--env <env>', 'environment name')
      .option('--branch <branch>', 'check out this branch')
      .option('--sha <sha>', 'check out this commit')
      .option('--attempts <n>', 'independent attempts', '1')
      .option('--command <command>', 'run this command as the agent phase (instead of the agent)')
      .option(
        '--wait',
        'wait for the task to finish, showing its progress; exit code 0 only if every attempt succeeded (a failed verify counts only with --require-verify)',
      )
      .option(
        REQUIRE_VERIFY_FLAG,
        "with --wait: exit code 3 when an attempt's verify failed (else 0 if every attempt succeeded); the environment's verifyRequired: true does the same",
      )
      .option(RAW_FLAG, RAW_HELP)
      .argument('[prompt]', 'what the agent is asked to do'),
  );
  withAgentOptions(exec).action(
    async (
      prompt: string | undefined,
      options: ClientOptions &
        AgentFlags & {
          env: string;
          branch?: string;
          sha?: string;
          attempts: string;
          command?: string;
          wait?: boolean;
          requireVerify?: boolean;
        },
    ) => {
      if (options.requireVerify && !options.wait) {
        throw new BerthError(
          'invalid_input',
          '--require-verify needs --wait (the exit code is decided once the task has finished)',
        );
      }
      // The server names its range (1 to BERTH_MAX_ATTEMPTS) for a number outside it.
      if (!/^[0-9]{1,6}$/.test(options.attempts)) {
        throw new BerthError(
          'invalid_input',
          `--attempts must be a whole number from 1 to the server's cap (BERTH_MAX_ATTEMPTS, 8 unless its operator set it; got ${options.attempts})`,
        );
      }
      const attempts = Number(options.attempts);
      const limits = agentLimitsFrom(options);
      const client = ctx.client(options);
      const requireVerify = options.wait
        ? await verifyRequired(client, options.env, options.requireVerify === true)
        : false;
      let task: TaskViewBody = await client.call((api) =>
        api.POST('/v1/tasks', {
          body: {
            environment: options.env,
            ...(prompt !== undefined ? { prompt } : {}),
            ...(options.command !== undefined ? { command: options.command } : {}),
            ...(options.branch !== undefined ? { branch: options.branch } : {}),
            ...(options.sha !== undefined ? { sha: options.sha } : {}),
            attempts,
            ...(options.model !== undefined ? { model: options.model } : {}),
            ...(Object.keys(limits).length > 0 ? { limits } : {}),
          },
        }),
      );
      if (!options.wait) {
        if (options.json) ctx.json(task);
        else
          ctx.out(
            task.attempts.length > 1
              ? `submitted task ${task.id} (${task.attempts.length} attempts); follow them with: berth task logs ${task.id} --follow (each line prefixed with its attempt; --attempt ATTEMPT for one)`
              : `submitted task ${task.id} (1 attempt); follow it with: berth task logs ${task.id} --follow`,
          );
        return;
      }
      if (!options.json) ctx.err(`task ${task.id} submitted`);
      task = await waitForTask(ctx, client, task, false);
      if (options.json) ctx.json(task);
      else ctx.out(describeTask(task));
      ctx.exitCode = taskExitCode(task.attempts, requireVerify);
      if (ctx.exitCode === VERIFY_FAILED_EXIT_CODE && !options.json)
        ctx.err(
          `berth: verification is required (${options.requireVerify ? REQUIRE_VERIFY_FLAG : 'verifyRequired: true'}) and failed for ${task.attempts
            .filter((a) => a.verification?.passed !== true)
            .map((a) => a.id)
            .join(', ')}: exit code ${VERIFY_FAILED_EXIT_CODE}`,
        );
    },
  );
}

/**
 * `berth env test ENV`: the lifecycle up to lockdown, then a command (or, with -it, an
 * interactive shell), printing everything, so a user can see why a tool is missing.
 */
export function registerEnvTestCommand(env: Command, ctx: CliContext): void {
  withClientOptions(
    env
      .command('test')
      .description(
        "run the lifecycle up to lockdown, then a command or an interactive shell, printing everything (the environment's verify is not run)",
      )
      .argument('<env>', 'environment name')
      .option(
        '--command <command>',
        'the command to run after lockdown',
        'echo "environment ready in $(pwd)"',
      )
      .option('--branch <branch>', 'check out this branch')
      .option('--sha <sha>', 'check out this commit')
      .option('-i, --interactive', 'keep stdin open (with -t: a shell in the sandbox)')
      .option(
        '-t, --tty',
        'a terminal: with -i, open a login shell in the sandbox (needs the Docker CLI on the server machine)',
      )
      .option(RAW_FLAG, RAW_HELP),
  ).action(
    async (
      name: string,
      options: ClientOptions & {
        command: string;
        branch?: string;
        sha?: string;
        interactive?: boolean;
        tty?: boolean;
      },
    ) => {
      const shell = options.interactive === true && options.tty === true;
      // Refused before anything is made: a shell without a terminal would hold a sandbox for
      // nothing (docker exec -it fails) until the task was cancelled.
      if (shell && !ctx.stdinIsTerminal()) {
        throw new BerthError(
          'invalid_input',
          'env test -it needs a terminal (standard input is not one); nothing was started. Use --command "…" to run a command instead',
        );
      }
      const client = ctx.client(options);
      let task: TaskViewBody = await client.call((api) =>
        api.POST('/v1/tasks', {
          body: {
            environment: name,
            // A shell needs the sandbox to stay up: the task holds it until the shell ends.
            command: shell ? 'sleep 86400' : options.command,
            ...(options.branch !== undefined ? { branch: options.branch } : {}),
            ...(options.sha !== undefined ? { sha: options.sha } : {}),
            attempts: 1,
            // Up to lockdown and the command: the environment's verify is not run.
            verify: false,
          },
        }),
      );
      const attempt = task.attempts[0];
      if (attempt === undefined) throw new BerthError('internal', 'the task has no attempt');
      ctx.err(`task ${task.id}, attempt ${attempt.id}`);
      if (shell) {
        const { openShell } = await import('../sandbox-shell.js');
        const controller = new AbortController();
        let reachedAgent = false;
        let sandboxId: string | undefined;
        const write = ctx.streamTo(ctx.io.stderr);
        const following = followEvents(
          client,
          task.id,
          attempt.id,
          (event) => {
            write(formatProgress(event, ''));
            const named =
              event.type === 'log' && event.stream === 'system'
                ? /^sandbox ([0-9a-f]{12})\b/.exec(event.text)
                : null;
            if (named) sandboxId = named[1];
            if (event.type === 'phase' && event.phase === 'agent' && !reachedAgent) {
              reachedAgent = true;
              controller.abort();
            }
          },
          controller.signal,
        ).catch(() => undefined);
        await following;
        if (!reachedAgent) {
          task = await getTask(client, task.id);
          ctx.err(
            `the lifecycle ended before the shell could open: ${task.attempts[0]?.error ?? task.status}`,
          );
          ctx.exitCode = 1;
          return;
        }
        try {
          ctx.exitCode = await openShell(attempt.id, sandboxId);
        } finally {
          await cancelTask(client, task.id);
        }
        return;
      }
      task = await waitForTask(ctx, client, task, options.json === true);
      const done = task.attempts[0];
      const command = done?.commands.find((c) => c.phase === 'agent');
      if (options.json) ctx.json(task);
      else if (command) ctx.out(command.output.trimEnd());
      if (done?.error) ctx.err(`berth: ${done.error}`);
      ctx.exitCode = command ? (command.exitCode === 0 ? 0 : Math.min(command.exitCode, 255)) : 1;
    },
  );
}

export function registerTaskCommands(program: Command, ctx: CliContext): void {
  const task = program.command('task').description('tasks and their attempts');

  withClientOptions(
    task
      .command('list')
      .description('recent tasks')
      .option('--env <env>', 'only this environment')
      .option('--limit <n>', 'at most this many', '20'),
  ).action(async (options: ClientOptions & { env?: string; limit: string }) => {
    const { tasks } = await ctx.client(options).call((api) =>
      api.GET('/v1/tasks', {
        params: {
          query: { limit: options.limit, ...(options.env ? { environment: options.env } : {}) },
        },
      }),
    );
    if (options.json) return ctx.json({ tasks });
    if (tasks.length === 0) return ctx.out('no tasks');
    ctx.out(
      formatTable(
        tasks.map((t) => ({
          task: t.id,
          environment: t.environment,
          status: t.status,
          attempts: String(t.attempts.length),
          created: t.createdAt,
          what: (t.command ?? t.prompt).slice(0, 50),
        })),
        ['task', 'environment', 'status', 'attempts', 'created', 'what'],
      ),
    );
  });

  withClientOptions(
    task
      .command('show')
      .description('a task and its attempts side by side')
      .argument('<task>')
      .option(RAW_FLAG, RAW_HELP),
  ).action(async (taskId: string, options: ClientOptions) => {
    const view = await getTask(ctx.client(options), taskId);
    if (options.json) ctx.json(view);
    else ctx.out(describeTask(view));
  });

  withClientOptions(
    task
      .command('logs')
      .description(
        "the attempts' log: the latest turn (the last follow-up, else the task's attempts, each line prefixed with its attempt when several), or --attempt's",
      )
      .argument('<task>')
      .option('--attempt <attempt>', 'only this attempt')
      .option('-f, --follow', 'keep streaming until the attempts end')
      .option(RAW_FLAG, RAW_HELP),
  ).action(
    async (taskId: string, options: ClientOptions & { attempt?: string; follow?: boolean }) => {
      const client = ctx.client(options);
      const view = await getTask(client, taskId);
      const picked =
        options.attempt === undefined
          ? followedAttempts(view)
          : view.attempts.filter((a) => a.id === options.attempt);
      if (picked.length === 0) {
        throw new BerthError(
          'not_found',
          `attempt ${options.attempt ?? ''} of task ${taskId} not found (attempts: ${view.attempts.map((a) => a.id).join(', ')})`,
        );
      }
      const several = picked.length > 1;
      const show = (attempt: AttemptViewBody) => {
        const write = ctx.streamTo(ctx.io.stdout);
        const prefix = attemptPrefix(attempt, several);
        const print = (event: AttemptEvent) => {
          if (options.json) ctx.io.stdout.write(`${inertJson(JSON.stringify(event))}\n`);
          else write(formatProgress(event, prefix));
        };
        // Several attempts print together: each one's lines whole, so none is cut by another's.
        const lines = several && !options.json ? wholeLines() : undefined;
        return {
          print: (event: AttemptEvent) => (lines ? lines.push(event) : [event]).forEach(print),
          end: () => lines?.flush().forEach(print),
        };
      };
      if (options.follow) {
        await Promise.all(
          picked.map(async (attempt) => {
            const shown = show(attempt);
            await followEvents(client, taskId, attempt.id, shown.print);
            shown.end();
          }),
        );
        return;
      }
      for (const attempt of picked) {
        const { print, end } = show(attempt);
        let after = 0;
        for (;;) {
          const { events } = (await client.call((api) =>
            api.GET('/v1/tasks/{id}/attempts/{attempt}/events', {
              params: {
                path: { id: taskId, attempt: attempt.id },
                query: { after: String(after) },
              },
            }),
          )) as { events: AttemptEvent[] };
          for (const event of events) print(event);
          if (events.length === 0) break;
          after = events[events.length - 1]?.seq ?? after;
        }
        end();
      }
    },
  );

  withClientOptions(
    task
      .command('diff')
      .description("an attempt's diff (git apply accepts it)")
      .argument('<task>')
      .option(
        '--attempt <attempt>',
        'which attempt (default: the picked one; a lone attempt is picked already)',
      )
      .option('--turn <n>', TURN_HELP)
      .option(
        RAW_FLAG,
        'on a terminal too, the exact patch (to a pipe or a file it is always exact)',
      ),
  ).action(async (taskId: string, options: ClientOptions & { attempt?: string; turn?: string }) => {
    const { view } = await fetchDiff(ctx.client(options), taskId, options.attempt, options.turn);
    if (options.json) ctx.json(view);
    // For `git apply` (a pipe, a file) the patch is exact; a person reading it sees it inert.
    else if (ctx.raw || !isTerminal(ctx.io.stdout)) ctx.io.stdout.write(view.diff);
    else ctx.io.stdout.write(inertText(view.diff, 'visible'));
  });

  withClientOptions(
    task
      .command('pick')
      .description('pick the attempt that becomes the PR, is applied, or takes follow-ups')
      .argument('<task>')
      .argument('<attempt>'),
  ).action(async (taskId: string, attemptId: string, options: ClientOptions) => {
    const view = await ctx.client(options).call((api) =>
      api.POST('/v1/tasks/{id}/pick', {
        params: { path: { id: taskId } },
        body: { attempt: attemptId },
      }),
    );
    if (view.warning !== null) ctx.err(`warning: ${view.warning}`);
    if (options.json) ctx.json(view);
    else ctx.out(`picked ${view.picked ?? attemptId} for task ${view.id}`);
  });

  registerApplyCommand(task, ctx);
  registerPrCommand(task, ctx);
  registerFollowUpCommand(task, ctx);

  withClientOptions(
    task
      .command('cancel')
      .description('stop a task, then print its status once its attempts have stopped'),
  )
    .argument('<task>')
    .action(async (taskId: string, options: ClientOptions) => {
      const client = ctx.client(options);
      let view = await cancelTask(client, taskId);
      // A running attempt stops within seconds (its sandbox removed): the status is printed
      // once it has, so what is printed is what the task ended as.
      const deadline = Date.now() + CANCEL_WAIT_MS;
      for (let poll = 0; !isFinalStatus(view.status) && Date.now() < deadline; poll++) {
        await new Promise((r) => setTimeout(r, statusPollDelayMs(poll)));
        view = await getTask(client, taskId);
      }
      if (options.json) ctx.json(view);
      else if (isFinalStatus(view.status)) ctx.out(`task ${view.id}: ${view.status}`);
      else
        ctx.out(
          `task ${view.id}: ${view.status} (cancel requested; its attempts have not stopped after ${CANCEL_WAIT_MS / 1000} s: see berth task show ${view.id})`,
        );
    });
}
