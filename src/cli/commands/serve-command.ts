import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { createLogger } from '../../util/logger.js';

interface ServeOptions {
  dataDir?: string;
  host?: string;
  port?: string;
  allowLocalRepos?: boolean;
  logLevel?: string;
  modelBaseUrl?: string;
  model?: string;
  json?: boolean;
}

export function registerServeCommand(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('run the Berth server (API and, once built, the web UI)')
    .option('--data-dir <dir>', 'data directory (else BERTH_DATA_DIR, else the XDG data home)')
    .option('--host <host>', 'address to listen on (else BERTH_HOST, else 127.0.0.1)')
    .option('--port <port>', 'port to listen on (else BERTH_PORT, else 8420)')
    .option('--allow-local-repos', 'allow environments whose repository is a local path')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace')
    .option(
      '--model-base-url <url>',
      'OpenAI-compatible API for the agent (else BERTH_MODEL_BASE_URL; key: BERTH_MODEL_API_KEY)',
    )
    .option('--model <name>', 'model name (else BERTH_MODEL)')
    .option('--json', 'print the URL (and the first admin token) as JSON')
    .action(async (options: ServeOptions) => {
      const config = ctx.config({
        dataDir: options.dataDir,
        host: options.host,
        port: options.port,
        allowLocalRepositories: options.allowLocalRepos,
        logLevel: options.logLevel,
        modelBaseUrl: options.modelBaseUrl,
        model: options.model,
      });
      const logger = createLogger(config.logLevel);
      // Loaded here so that commands which need no server start fast.
      const { startServer } = await import('../../server/main.js');
      const server = await startServer(config, logger);
      if (options.json) {
        ctx.out(
          JSON.stringify({
            url: server.url,
            ...(server.uiUrl ? { uiUrl: server.uiUrl } : {}),
            dataDir: config.dataDir,
            ...(server.adminToken ? { adminToken: server.adminToken } : {}),
          }),
        );
      } else {
        ctx.out(`Berth is listening on ${server.url} (data in ${config.dataDir})`);
        ctx.out(
          server.uiUrl
            ? `Web UI: ${server.uiUrl} (sign in with a token)`
            : 'Web UI: not built (run npm run build:web)',
        );
        if (server.adminToken) {
          ctx.out(`Admin token (shown once, keep it): ${server.adminToken}`);
          ctx.out(
            `Log the CLI in with: npx berth login --url ${server.url} --token ${server.adminToken}`,
          );
        }
      }
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          logger.info('shutting down');
          server.close().then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
