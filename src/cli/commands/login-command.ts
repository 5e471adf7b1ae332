import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { ApiClient } from '../api-client.js';
import { writeLogin } from '../login-file.js';
import { clientEnv } from '../../config/config.js';
import { BerthError } from '../../errors/berth-error.js';

export function registerLoginCommand(program: Command, ctx: CliContext): void {
  program
    .command('login')
    .description('check a server URL and token, and store them for later commands')
    .option('--url <url>', 'server URL (else BERTH_URL, else http://127.0.0.1:8420)')
    .option('--token <token>', 'API token (else BERTH_TOKEN)')
    .option('--json', 'print JSON')
    .action(async (options: { url?: string; token?: string; json?: boolean }) => {
      const env = clientEnv();
      const url = options.url ?? env.url ?? 'http://127.0.0.1:8420';
      const token = options.token ?? env.token;
      if (token === undefined)
        throw new BerthError('invalid_input', 'give the token with --token or BERTH_TOKEN');
      const who = await new ApiClient(url, token).call((api) => api.GET('/v1/whoami'));
      const path = writeLogin(ctx.config().configDir, { url, token });
      if (options.json)
        ctx.json({ url, token: { id: who.id, name: who.name, admin: who.admin }, file: path });
      else
        ctx.out(
          `logged in to ${url} as ${who.name}${who.admin ? ' (admin)' : ''}; saved in ${path}`,
        );
    });
}
