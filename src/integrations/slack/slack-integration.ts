import {
  webApi,
  App,
  LogLevel,
  SocketModeReceiver,
  type Logger as BoltLogger,
  type Receiver,
} from '@slack/bolt';
import type { Store } from '../../ports/store.js';
import type { TaskService } from '../../services/task-service.js';
import type { Logger } from '../../util/logger.js';
import { SlackBot } from './slack-bot.js';
import { SlackConversation } from './slack-conversation.js';
import { slackEventsHandler } from './slack-http-events.js';
import { ACTION_CREATE_PR, ACTION_PICK } from './slack-messages.js';
import { SlackPoster } from './slack-poster.js';
import { SlackRouting } from './slack-routing.js';
import { slackMode, type SlackMode, type SlackSettings } from './slack-settings.js';

/**
 * Slack inside `berth serve`, with Bolt for JavaScript: Socket Mode through Bolt's
 * SocketModeReceiver when an app token is set, and the Events API on Berth's own route
 * (slack-http-events.ts) when a signing secret is set; both feed one Bolt app. Before any
 * listener, an event whose `event_id` was seen already (Slack's retries, also across a restart:
 * the store remembers) is dropped, and so is every message from a bot (Berth's own included).
 */

/** Event ids are remembered this long (Slack retries for minutes, not days). */
const EVENT_MEMORY_MS = 24 * 3600_000;

function boltLogger(logger: Logger): BoltLogger {
  const line =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...msg: unknown[]) =>
      logger[level](
        { part: 'slack' },
        msg.map((m) => (m instanceof Error ? m.message : String(m))).join(' '),
      );
  return {
    debug: line('debug'),
    info: line('debug'),
    warn: line('warn'),
    error: line('error'),
    setLevel: () => undefined,
    getLevel: () => LogLevel.INFO,
    setName: () => undefined,
  };
}

/** A receiver that receives nothing itself: events come through `handleHttp` (HTTP only). */
const noReceiver: Receiver = {
  init: () => undefined,
  start: () => Promise.resolve(),
  stop: () => Promise.resolve(),
};

interface SlackEvent {
  type?: unknown;
  subtype?: unknown;
  bot_id?: unknown;
  channel?: unknown;
  user?: unknown;
  text?: unknown;
  ts?: unknown;
  thread_ts?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * What makes a button press one interaction, kept with the event ids: Slack's trigger_id (its
 * own for every press), else the user, action and action_ts. Undefined: neither (not Slack's).
 */
function buttonPressId(body: Record<string, unknown>): string | undefined {
  const trigger = str(body.trigger_id);
  if (trigger !== undefined && trigger !== '') return `block_actions:${trigger}`;
  const user = str((body.user as { id?: unknown } | undefined)?.id);
  const action = (Array.isArray(body.actions) ? body.actions[0] : undefined) as
    { action_id?: unknown; action_ts?: unknown } | undefined;
  const actionTs = str(action?.action_ts);
  if (user === undefined || actionTs === undefined) return undefined;
  return `block_actions:${user}:${str(action?.action_id) ?? ''}:${actionTs}`;
}

export interface SlackStatus {
  mode: SlackMode;
  /** auth.test's answer: the bot's user id and team, or why it failed. */
  auth: { ok: true; userId: string; team: string } | { ok: false; error: string } | null;
}

export class SlackIntegration {
  readonly app: App;
  readonly mode: SlackMode;
  /** The HTTP route's handler (absent without a signing secret). */
  readonly handleHttp?: (request: Request) => Promise<Response>;
  private readonly conversation: SlackConversation;
  private readonly bot: SlackBot;
  private botUserId: string | undefined;
  private auth: SlackStatus['auth'] = null;
  private started = false;

  constructor(
    private readonly settings: SlackSettings,
    deps: { store: Store; tasks: TaskService; logger: Logger },
  ) {
    const logger = deps.logger.child({ part: 'slack' });
    this.mode = slackMode(settings);
    const clientOptions: webApi.WebClientOptions = {
      slackApiUrl: settings.apiUrl,
      logger: boltLogger(logger),
      timeout: 15_000,
      // A 429 fails the call at once (the client would pause ALL calls for the whole
      // Retry-After): SlackPoster waits it out, capped, for that call only.
      rejectRateLimitedCalls: true,
      retryConfig: {
        retries: settings.retries,
        factor: 2,
        minTimeout: 500,
        maxTimeout: 30_000,
        maxRetryTime: settings.maxRetryTimeMs,
      },
    };
    const receiver: Receiver =
      settings.appToken !== undefined
        ? new SocketModeReceiver({
            appToken: settings.appToken,
            logger: boltLogger(logger),
            // apps.connections.open goes to the same Web API address.
            installerOptions: { clientOptions: { slackApiUrl: settings.apiUrl } },
          })
        : noReceiver;
    this.app = new App({
      token: settings.botToken,
      receiver,
      clientOptions,
      logger: boltLogger(logger),
      tokenVerificationEnabled: false,
      ignoreSelf: false,
    });
    const poster = new SlackPoster(this.app.client, logger, {
      tries: settings.rateLimitTries,
      waitMaxMs: settings.rateLimitWaitMaxMs,
    });
    this.conversation = new SlackConversation({
      tasks: deps.tasks,
      store: deps.store,
      poster,
      publicUrl: settings.publicUrl,
      pollMs: settings.pollMs,
      logger,
    });
    const bot = (this.bot = new SlackBot({
      store: deps.store,
      tasks: deps.tasks,
      routing: new SlackRouting(deps.store),
      poster,
      conversation: this.conversation,
      publicUrl: settings.publicUrl,
      maxAttempts: settings.maxAttempts,
      botUserId: () => this.botUserId,
      logger,
    }));

    // Slack's retries of an event (same event_id) start nothing twice, across restarts too.
    // A button press has no event_id: a captured signed one sent again within the signature's
    // 5 minutes is the same interaction (its trigger_id), acted on once, across restarts too.
    this.app.use(async ({ body, next }) => {
      const eventId = str((body as { event_id?: unknown }).event_id);
      if (eventId !== undefined) {
        const first = await deps.store.claimSlackEvent(eventId, new Date().toISOString());
        if (!first) {
          logger.info({ eventId }, 'slack event already handled; ignored');
          return;
        }
      }
      if ((body as { type?: unknown }).type === 'block_actions') {
        const pressId = buttonPressId(body as Record<string, unknown>);
        const first =
          pressId !== undefined &&
          (await deps.store.claimSlackEvent(pressId, new Date().toISOString()));
        if (!first) {
          logger.info(
            { pressId: pressId ?? null },
            pressId !== undefined
              ? 'slack button press already handled; ignored'
              : 'slack button press without trigger_id or action_ts; ignored',
          );
          return;
        }
      }
      await next();
    });

    this.app.event('app_mention', async ({ event }) => {
      const e = event as SlackEvent;
      // Messages from bots (Berth's own replies included) are ignored.
      if (e.bot_id !== undefined || e.subtype === 'bot_message') return;
      const channel = str(e.channel);
      const user = str(e.user);
      const ts = str(e.ts);
      if (channel === undefined || user === undefined || ts === undefined) return;
      if (this.botUserId !== undefined && user === this.botUserId) return;
      await bot.mention({ channel, user, text: str(e.text) ?? '', ts, threadTs: str(e.thread_ts) });
    });

    this.app.action(
      new RegExp(`^(${ACTION_CREATE_PR}|${ACTION_PICK}_[0-9]+|berth_view_diff)$`),
      async ({ ack, body, action }) => {
        await ack();
        const b = body as {
          user?: { id?: unknown };
          channel?: { id?: unknown };
          container?: { channel_id?: unknown; thread_ts?: unknown; message_ts?: unknown };
          message?: { ts?: unknown; thread_ts?: unknown };
        };
        const a = action as { action_id?: unknown; value?: unknown };
        const channel = str(b.channel?.id) ?? str(b.container?.channel_id);
        const user = str(b.user?.id);
        const threadTs =
          str(b.message?.thread_ts) ?? str(b.container?.thread_ts) ?? str(b.message?.ts);
        const actionId = str(a.action_id);
        if (!channel || !user || !threadTs || !actionId) return;
        await bot.press({ actionId, value: str(a.value) ?? '', user, channel, threadTs });
      },
    );

    this.app.error(async (error) => {
      logger.warn({ err: error.message }, 'a Slack listener failed');
      return Promise.resolve();
    });

    if (settings.signingSecret !== undefined)
      this.handleHttp = slackEventsHandler({
        app: this.app,
        signingSecret: settings.signingSecret,
        logger,
      });
    this.logger = logger;
    this.store = deps.store;
  }

  private readonly logger: Logger;
  private readonly store: Store;

  /**
   * Checks the bot token (auth.test, once, quickly) and starts connecting Socket Mode, if on,
   * without waiting for it (`connected`): the server serves while Slack is unreachable.
   */
  async start(): Promise<void> {
    await this.checkAuth();
    if (this.settings.appToken !== undefined)
      this.connected = this.app.start().then(
        () => this.logger.info('slack socket mode connected'),
        (error: unknown) =>
          this.logger.warn(
            { err: error instanceof Error ? error.message : String(error) },
            'slack socket mode could not connect',
          ),
      );
    this.started = true;
    // The turns a stopped server was following get their edits and final messages now.
    const resumed = await this.bot.resume().catch((error: unknown) => {
      this.logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'slack conversations of the last run could not be resumed',
      );
      return 0;
    });
    if (resumed > 0) this.logger.info({ resumed }, 'slack conversations resumed');
    await this.store
      .pruneSlackEvents(new Date(Date.now() - EVENT_MEMORY_MS).toISOString())
      .catch(() => 0);
    this.logger.info(
      { mode: this.mode, botUserId: this.botUserId ?? null },
      'slack integration on',
    );
  }

  /** Resolves once Socket Mode's first connection is open (or failed); at once without it. */
  connected: Promise<void> = Promise.resolve();

  /** auth.test with the bot token, without retries: who the bot is (its mention is cut from prompts). */
  async checkAuth(): Promise<SlackStatus['auth']> {
    const client = new webApi.WebClient(this.settings.botToken, {
      slackApiUrl: this.settings.apiUrl,
      timeout: 5000,
      retryConfig: { retries: 0 },
      logger: boltLogger(this.logger),
    });
    try {
      const answer = await client.auth.test();
      this.botUserId = str(answer.user_id);
      this.auth = { ok: true, userId: this.botUserId ?? '', team: str(answer.team) ?? '' };
    } catch (error) {
      this.auth = { ok: false, error: error instanceof Error ? error.message : String(error) };
      this.logger.warn({ err: this.auth.error }, 'slack auth.test failed (BERTH_SLACK_BOT_TOKEN)');
    }
    return this.auth;
  }

  status(): SlackStatus {
    return { mode: this.mode, auth: this.auth };
  }

  async stop(): Promise<void> {
    if (this.started && this.settings.appToken !== undefined)
      await this.app.stop().catch(() => undefined);
    this.started = false;
    await this.conversation.stop();
  }
}
