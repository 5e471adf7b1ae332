import type { BerthConfig } from '../../config/config.js';

/**
 * The Slack integration's settings, from the server's configuration (config.ts reads the
 * BERTH_SLACK_* variables): which ways in are on, and the Web API's address. Off (undefined)
 * without a bot token, or with neither an app token nor a signing secret.
 */
export interface SlackSettings {
  botToken: string;
  /** Socket Mode (`BERTH_SLACK_APP_TOKEN`). */
  appToken?: string;
  /** The Events API over HTTP (`BERTH_SLACK_SIGNING_SECRET`). */
  signingSecret?: string;
  /** The Web API's base, ending in `/` (`BERTH_SLACK_API_URL`). */
  apiUrl: string;
  /** Where people open the web UI (`BERTH_PUBLIC_URL`, else the server's own address). */
  publicUrl: string;
  maxAttempts: number;
  /** How often a followed task is read (ms). */
  pollMs: number;
  /** The Web API's retries of one call (429 with Retry-After, network errors, 5xx). */
  retries: number;
  /** No call is retried past this long after it began (ms). */
  maxRetryTimeMs: number;
  /**
   * A call answered 429 is tried at most this many times in all (Berth retries it, not the Web
   * API client, so other calls never wait for it: slack-poster.ts).
   */
  rateLimitTries: number;
  /** The longest a 429's Retry-After is waited before the next try (ms). */
  rateLimitWaitMaxMs: number;
}

export type SlackMode = 'socket' | 'http' | 'socket+http';

export function slackMode(settings: SlackSettings): SlackMode {
  if (settings.appToken !== undefined && settings.signingSecret !== undefined) return 'socket+http';
  return settings.appToken !== undefined ? 'socket' : 'http';
}

export function slackSettingsFromConfig(
  config: BerthConfig,
  serverUrl: string,
  tuning: Partial<
    Pick<
      SlackSettings,
      'pollMs' | 'retries' | 'maxRetryTimeMs' | 'rateLimitTries' | 'rateLimitWaitMaxMs'
    >
  > = {},
): SlackSettings | undefined {
  const { botToken, appToken, signingSecret, apiUrl } = config.slack;
  if (botToken === undefined || (appToken === undefined && signingSecret === undefined))
    return undefined;
  return {
    botToken,
    ...(appToken !== undefined ? { appToken } : {}),
    ...(signingSecret !== undefined ? { signingSecret } : {}),
    apiUrl,
    publicUrl: (config.publicUrl ?? serverUrl).replace(/\/+$/, ''),
    maxAttempts: config.maxAttempts,
    pollMs: tuning.pollMs ?? 1000,
    retries: tuning.retries ?? 5,
    maxRetryTimeMs: tuning.maxRetryTimeMs ?? 10 * 60_000,
    rateLimitTries: tuning.rateLimitTries ?? 3,
    rateLimitWaitMaxMs: tuning.rateLimitWaitMaxMs ?? 30_000,
  };
}
