import { newId } from '../../domain/ids.js';
import { BerthError } from '../../errors/berth-error.js';
import type { Caller } from '../../services/caller.js';
import type { Store } from '../../ports/store.js';
import type { TaskService } from '../../services/task-service.js';
import type { Logger } from '../../util/logger.js';
import { parseMessage, plainText } from './message-grammar.js';
import type { SlackConversation } from './slack-conversation.js';
import {
  ACTION_CREATE_PR,
  ACTION_PICK,
  EXAMPLE_MENTION,
  finalMessage,
  progressMessage,
  replyMessage,
} from './slack-messages.js';
import type { SlackPoster } from './slack-poster.js';
import type { SlackRouting } from './slack-routing.js';
import { link, untrusted } from './slack-text.js';

/**
 * What Berth does with a mention and a button press, whichever way they came (HTTP or Socket
 * Mode; slack-integration.ts). It turns them into calls of the task service, as the API does, and
 * answers in the thread. Nothing here trusts the message: the grammar parses it
 * (message-grammar.ts), the routing decides the environment and the caller (slack-routing.ts).
 */

/** The part of an `app_mention` event Berth reads. */
export interface MentionEvent {
  channel: string;
  user: string;
  text: string;
  ts: string;
  threadTs?: string | undefined;
}

/** The part of a `block_actions` payload Berth reads. */
export interface ButtonPress {
  actionId: string;
  value: string;
  user: string;
  channel: string;
  /** The thread the pressed message is in. */
  threadTs: string;
}

export interface SlackBotDeps {
  store: Store;
  tasks: TaskService;
  routing: SlackRouting;
  poster: SlackPoster;
  conversation: SlackConversation;
  publicUrl: string;
  maxAttempts: number;
  /** The bot's own user id (auth.test), once known: its mention is not part of the prompt. */
  botUserId: () => string | undefined;
  logger: Logger;
}

export class SlackBot {
  constructor(private readonly deps: SlackBotDeps) {}

  /** What a refusal says in the thread: a BerthError's message; anything else is logged. */
  private reason(error: unknown): string {
    if (error instanceof BerthError) return error.message;
    this.deps.logger.error({ err: error }, 'a Slack request failed unexpectedly');
    return 'an internal error occurred (the server logged it)';
  }

  private reply(event: { channel: string; threadTs: string }, text: string): Promise<unknown> {
    return this.deps.poster.post(event.channel, event.threadTs, replyMessage(text));
  }

  /** A mention of Berth: a new task, or a follow-up when the thread carries one. */
  async mention(event: MentionEvent): Promise<void> {
    const { store, routing, tasks, poster, publicUrl } = this.deps;
    const threadTs = event.threadTs ?? event.ts;
    const where = { channel: event.channel, threadTs };
    const botUserId =
      this.deps.botUserId() ?? /^\s*<@([UW][A-Z0-9]+)(?:\|[^>]*)?>/.exec(event.text)?.[1];
    const parsed = parseMessage(event.text, botUserId, this.deps.maxAttempts);

    const thread =
      event.threadTs !== undefined
        ? await store.getSlackThread(event.channel, event.threadTs)
        : undefined;
    // A follow-up is a prompt only: the whole text after the mention.
    if (thread) return this.followUp(event, thread.taskId, plainText(event.text, botUserId).trim());

    const route = await routing.route({
      channel: event.channel,
      slackUserId: event.user,
      ...(parsed.ok && parsed.options.env !== undefined ? { env: parsed.options.env } : {}),
    });
    if (route.kind === 'unmapped') {
      await this.reply(
        where,
        `No environment serves this channel yet. To map it, add its id to an environment file and save it with \`berth env update\`:\n\`triggers: { slack: { channels: [${untrusted(event.channel)}] } }\``,
      );
      return;
    }
    if (route.kind === 'refused') {
      await poster.ephemeral(
        event.channel,
        event.user,
        threadTs,
        "You may not start Berth tasks here: ask an admin to link you to a token (`berth token link NAME --slack-user YOUR_ID`), or to set `triggers.slack.anyone: true` for this channel's environment. Nothing was started.",
      );
      return;
    }
    if (!parsed.ok) {
      await this.reply(where, `${untrusted(parsed.problem)}. Nothing was started.`);
      return;
    }
    if (route.kind === 'choose') {
      const asked =
        route.asked !== undefined
          ? `There is no environment "${untrusted(route.asked)}" you may use. `
          : 'Several environments serve this channel: choose one with env=NAME. ';
      await this.reply(
        where,
        `${asked}Environments you may use: ${route.usable.map((n) => `\`${untrusted(n)}\``).join(', ')}. Nothing was started.`,
      );
      return;
    }
    if (parsed.prompt === '') {
      await this.reply(
        where,
        `Say what to do after the mention, for example:\n\`${untrusted(EXAMPLE_MENTION)}\``,
      );
      return;
    }
    let detail;
    try {
      detail = await tasks.submit(route.caller, {
        environment: route.environment.spec.name,
        prompt: parsed.prompt,
        ...(parsed.options.attempts !== undefined ? { attempts: parsed.options.attempts } : {}),
        ...(parsed.options.branch !== undefined ? { branch: parsed.options.branch } : {}),
        ...(parsed.options.sha !== undefined ? { sha: parsed.options.sha } : {}),
      });
    } catch (error) {
      await this.reply(where, `The task was not started: ${untrusted(this.reason(error))}`);
      return;
    }
    const replyTs = await poster.post(
      event.channel,
      threadTs,
      progressMessage(detail.task, detail.attempts, publicUrl),
      { taskId: detail.task.id },
    );
    await store.putSlackThread({
      channel: event.channel,
      threadTs,
      taskId: detail.task.id,
      replyTs: replyTs ?? null,
      slackUserId: event.user,
      createdAt: new Date().toISOString(),
    });
    await this.follow({
      caller: route.caller,
      channel: event.channel,
      threadTs,
      replyTs,
      taskId: detail.task.id,
      slackUserId: event.user,
    });
  }

  private async followUp(event: MentionEvent, taskId: string, prompt: string): Promise<void> {
    const { store, routing, tasks, poster, publicUrl } = this.deps;
    const threadTs = event.threadTs ?? event.ts;
    const where = { channel: event.channel, threadTs };
    const task = await store.getTask(taskId);
    const environment = task ? await store.getEnvironmentById(task.environmentId) : undefined;
    const caller = environment
      ? await routing.callerFor(environment, event.channel, event.user)
      : undefined;
    if (!caller) {
      await poster.ephemeral(
        event.channel,
        event.user,
        threadTs,
        'You may not follow up on this task. Nothing was started.',
      );
      return;
    }
    if (prompt === '') {
      await this.reply(
        where,
        'Say what to do next after the mention, for example: `@berth also add a test for it`',
      );
      return;
    }
    let outcome;
    try {
      outcome = await tasks.followUp(caller, taskId, { prompt });
    } catch (error) {
      await this.reply(where, `The follow-up was not started: ${untrusted(this.reason(error))}`);
      return;
    }
    const scope = { attemptIds: [outcome.attempt.id] };
    const replyTs = await poster.post(
      event.channel,
      threadTs,
      progressMessage(outcome.detail.task, outcome.detail.attempts, publicUrl, scope),
      { taskId },
    );
    await this.follow({
      caller,
      channel: event.channel,
      threadTs,
      replyTs,
      taskId,
      attemptIds: scope.attemptIds,
      slackUserId: event.user,
    });
  }

  /** Records the turn (so a restart finishes it) and follows it until its final message. */
  private async follow(turn: {
    caller: Caller;
    channel: string;
    threadTs: string;
    replyTs: string | undefined;
    taskId: string;
    attemptIds?: string[];
    slackUserId: string;
  }): Promise<void> {
    const turnId = newId('slackTurn');
    await this.deps.store.putSlackTurn({
      id: turnId,
      channel: turn.channel,
      threadTs: turn.threadTs,
      replyTs: turn.replyTs ?? null,
      taskId: turn.taskId,
      attemptIds: turn.attemptIds ?? null,
      slackUserId: turn.slackUserId,
      createdAt: new Date().toISOString(),
    });
    this.deps.conversation.watch({ turnId, ...turn });
  }

  /**
   * Follows again the turns a stopped server left open (their final message not posted), as
   * their askers, if they still may see the task; the others are closed.
   */
  async resume(): Promise<number> {
    const { store, routing, conversation } = this.deps;
    let resumed = 0;
    for (const turn of await store.listOpenSlackTurns()) {
      const task = await store.getTask(turn.taskId);
      const environment = task ? await store.getEnvironmentById(task.environmentId) : undefined;
      const caller = environment
        ? await routing.callerFor(environment, turn.channel, turn.slackUserId)
        : undefined;
      if (!caller) {
        await store.finishSlackTurn(turn.id, new Date().toISOString());
        continue;
      }
      conversation.watch({
        turnId: turn.id,
        caller,
        channel: turn.channel,
        threadTs: turn.threadTs,
        replyTs: turn.replyTs ?? undefined,
        taskId: turn.taskId,
        ...(turn.attemptIds ? { attemptIds: turn.attemptIds } : {}),
      });
      resumed++;
    }
    return resumed;
  }

  /** A button of the final message, answered in its thread. */
  async press(press: ButtonPress): Promise<void> {
    const { store, routing, tasks, poster, publicUrl } = this.deps;
    const where = { channel: press.channel, threadTs: press.threadTs };
    const [taskId = '', attemptId] = press.value.split(' ');
    // The button must belong to the thread it was pressed in (a task of this thread).
    const thread = await store.getSlackThread(press.channel, press.threadTs);
    if (!thread || thread.taskId !== taskId) return;
    const task = await store.getTask(taskId);
    const environment = task ? await store.getEnvironmentById(task.environmentId) : undefined;
    const caller = environment
      ? await routing.callerFor(environment, press.channel, press.user)
      : undefined;
    if (!caller) {
      await poster.ephemeral(
        press.channel,
        press.user,
        press.threadTs,
        'You may not act on this task.',
      );
      return;
    }
    if (press.actionId === ACTION_CREATE_PR) {
      try {
        const outcome = await tasks.pullRequest(caller, taskId, {});
        const pr = outcome.pullRequest;
        await this.reply(
          where,
          pr
            ? `Pull request ${link(pr.url, `#${pr.number}`)} ${pr.created ? 'opened' : 'updated'} from branch \`${untrusted(outcome.branch)}\`.`
            : `Pushed branch \`${untrusted(outcome.branch)}\` (no pull request: the repository is not on GitHub).`,
        );
      } catch (error) {
        await this.reply(where, `No pull request: ${untrusted(this.reason(error))}`);
      }
      return;
    }
    if (press.actionId.startsWith(`${ACTION_PICK}_`) && attemptId !== undefined) {
      try {
        const { detail, warning } = await tasks.pick(caller, taskId, attemptId);
        const picked = detail.attempts.find((a) => a.id === attemptId);
        await this.reply(
          where,
          `Attempt ${(picked?.index ?? 0) + 1} picked${warning ? ` (${untrusted(warning)})` : ''}.`,
        );
        await poster.post(
          press.channel,
          press.threadTs,
          finalMessage(detail.task, detail.attempts, publicUrl),
          { taskId },
        );
      } catch (error) {
        await this.reply(where, `Not picked: ${untrusted(this.reason(error))}`);
      }
      return;
    }
    // "View diff" is a link: Slack reports the press, nothing to do.
  }
}
