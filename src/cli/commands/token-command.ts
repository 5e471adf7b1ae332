import type { Command } from 'commander';
import { formatTable, type CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';
import { checkSlackUserId } from '../../services/token-service.js';

type CreateOptions = ClientOptions & { admin?: boolean; slackUser?: string };

export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('manage API tokens (admin)');

  withClientOptions(
    token
      .command('create')
      .description('create a token; its value is printed once')
      .argument('<name>', 'a name for the token (used in environment members)')
      .option('--admin', 'the token may manage tokens and see every environment')
      .option('--slack-user <id>', 'a Slack user id (U0123ABCD) that acts as this token in Slack'),
  ).action(async (name: string, options: CreateOptions) => {
    // A bad Slack user id is refused before the token is made.
    if (options.slackUser !== undefined) checkSlackUserId(options.slackUser);
    const created = await ctx
      .client(options)
      .call((api) => api.POST('/v1/tokens', { body: { name, admin: options.admin === true } }));
    if (options.slackUser !== undefined)
      await ctx
        .client(options)
        .request('POST', `/v1/tokens/${encodeURIComponent(created.id)}/slack-user`, {
          slackUser: options.slackUser,
        });
    const shown = options.slackUser !== undefined ? { slackUser: options.slackUser } : {};
    if (options.json) return ctx.json({ ...created, ...shown });
    ctx.out(
      `created token ${created.name} (${created.id})${created.admin ? ' with admin rights' : ''}${options.slackUser !== undefined ? `, Slack user ${options.slackUser}` : ''}`,
    );
    ctx.out(`token (shown once, keep it): ${created.token}`);
  });

  withClientOptions(token.command('list').description('list tokens')).action(
    async (options: ClientOptions) => {
      const { tokens } = await ctx.client(options).call((api) => api.GET('/v1/tokens'));
      if (options.json) return ctx.json({ tokens });
      ctx.out(
        formatTable(
          tokens.map((t) => ({
            name: t.name,
            id: t.id,
            admin: t.admin ? 'yes' : 'no',
            created: t.createdAt,
            'last used': t.lastUsedAt ?? '-',
            revoked: t.revokedAt ?? '-',
          })),
          ['name', 'id', 'admin', 'created', 'last used', 'revoked'],
        ),
      );
    },
  );

  withClientOptions(
    token
      .command('link')
      .description('link a Slack user to a token: in Slack they act as it (docs/slack.md)')
      .argument('<token>', 'token id or name')
      .requiredOption('--slack-user <id>', 'the Slack user id (U0123ABCD)'),
  ).action(async (idOrName: string, options: ClientOptions & { slackUser: string }) => {
    checkSlackUserId(options.slackUser);
    const link = await ctx
      .client(options)
      .request<{ id: string; name: string; slackUser: string }>(
        'POST',
        `/v1/tokens/${encodeURIComponent(idOrName)}/slack-user`,
        { slackUser: options.slackUser },
      );
    if (options.json) return ctx.json(link);
    ctx.out(`Slack user ${link.slackUser} now acts as token ${link.name} (${link.id})`);
  });

  withClientOptions(
    token.command('revoke').description('revoke a token').argument('<token>', 'token id or name'),
  ).action(async (idOrName: string, options: ClientOptions) => {
    await ctx
      .client(options)
      .call((api) => api.DELETE('/v1/tokens/{idOrName}', { params: { path: { idOrName } } }));
    if (options.json) ctx.json({ revoked: idOrName });
    else ctx.out(`revoked token ${idOrName}`);
  });
}
