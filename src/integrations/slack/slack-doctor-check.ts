import type { BerthConfig } from '../../config/config.js';

/**
 * `berth doctor`'s Slack line: which ways in the configuration turns on (Socket Mode, the Events
 * API, both), and whether the bot token is valid, asked of the Web API at BERTH_SLACK_API_URL with
 * `auth.test` (one call, no retries). Undefined when no BERTH_SLACK_* variable is set.
 */

export interface SlackDoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export async function slackDoctorCheck(config: BerthConfig): Promise<SlackDoctorCheck | undefined> {
  const { botToken, appToken, signingSecret, apiUrl } = config.slack;
  if (botToken === undefined && appToken === undefined && signingSecret === undefined)
    return undefined;
  const name = 'slack';
  if (botToken === undefined)
    return {
      name,
      ok: false,
      detail: 'BERTH_SLACK_BOT_TOKEN is not set: Slack is off',
      fix: "set BERTH_SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-…; docs/slack.md)",
    };
  const modes = [
    ...(appToken !== undefined ? ['Socket Mode (BERTH_SLACK_APP_TOKEN)'] : []),
    ...(signingSecret !== undefined
      ? ['the Events API at POST /v1/integrations/slack/events (BERTH_SLACK_SIGNING_SECRET)']
      : []),
  ];
  if (modes.length === 0)
    return {
      name,
      ok: false,
      detail: 'neither BERTH_SLACK_APP_TOKEN nor BERTH_SLACK_SIGNING_SECRET is set: Slack is off',
      fix: 'set BERTH_SLACK_APP_TOKEN (Socket Mode, no public address needed) or BERTH_SLACK_SIGNING_SECRET (docs/slack.md)',
    };
  const { webApi } = await import('@slack/bolt');
  const client = new webApi.WebClient(botToken, {
    slackApiUrl: apiUrl,
    timeout: 5000,
    retryConfig: { retries: 0 },
    logLevel: webApi.LogLevel.ERROR,
  });
  try {
    const answer = await client.auth.test();
    return {
      name,
      ok: true,
      detail: `the bot token is valid (auth.test: ${String(answer.user ?? '?')} in ${String(answer.team ?? '?')}); mode: ${modes.join(' and ')}`,
    };
  } catch (error) {
    return {
      name,
      ok: false,
      detail: `auth.test at ${apiUrl} failed: ${error instanceof Error ? error.message : String(error)}; mode: ${modes.join(' and ')}`,
      fix: 'check BERTH_SLACK_BOT_TOKEN (the Bot User OAuth Token of the installed app) and BERTH_SLACK_API_URL',
    };
  }
}
