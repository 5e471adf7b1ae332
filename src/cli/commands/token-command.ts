import type { Command } from 'commander';
import { formatTable, type CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';

interface TokenView {
  id: string;
  name: string;
  admin: boolean;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('manage API tokens (admin)');

  withClientOptions(
    token
      .command('create')
      .description('create a token; its value is printed once')
      .argument('<name>', 'a name for the token (used in environment members)')
      .option('--admin', 'the token may manage tokens and see every environment'),
  ).action(async (name: string, options: ClientOptions & { admin?: boolean }) => {
    const created = await ctx
      .client(options)
      .request<TokenView & { token: string }>('POST', '/v1/tokens', {
        name,
        admin: options.admin === true,
      });
    if (options.json) return ctx.json(created);
    ctx.out(
      `created token ${created.name} (${created.id})${created.admin ? ' with admin rights' : ''}`,
    );
    ctx.out(`token (shown once, keep it): ${created.token}`);
  });

  withClientOptions(token.command('list').description('list tokens')).action(
    async (options: ClientOptions) => {
      const { tokens } = await ctx
        .client(options)
        .request<{ tokens: TokenView[] }>('GET', '/v1/tokens');
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
    token.command('revoke').description('revoke a token').argument('<token>', 'token id or name'),
  ).action(async (idOrName: string, options: ClientOptions) => {
    await ctx
      .client(options)
      .request<undefined>('DELETE', `/v1/tokens/${encodeURIComponent(idOrName)}`);
    if (options.json) ctx.json({ revoked: idOrName });
    else ctx.out(`revoked token ${idOrName}`);
  });
}
