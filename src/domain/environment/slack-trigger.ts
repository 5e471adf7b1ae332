import { z } from 'zod';

/**
 * `triggers.slack` of an environment file: the Slack channels (ids such as `C0123ABCD`) whose
 * mentions of Berth start tasks in this environment, and whether every member of those channels
 * may start them (`anyone: true`) rather than only the Slack users linked to a token that may use
 * the environment (`berth token link NAME --slack-user ID`).
 */
export const SLACK_CHANNEL_ID = /^[CGD][A-Z0-9]{2,30}$/;

export const slackTriggerSchema = z.strictObject({
  channels: z
    .array(
      z
        .string()
        .regex(
          SLACK_CHANNEL_ID,
          'a Slack channel id looks like C0123ABCD (the channel\'s "Copy link" ends with it), not its name',
        ),
    )
    .max(100)
    .default([]),
  anyone: z.boolean().default(false),
});

export type SlackTrigger = z.output<typeof slackTriggerSchema>;
