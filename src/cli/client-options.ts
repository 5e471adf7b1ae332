import type { Command } from 'commander';

/** The options every command that talks to a server takes. */
export interface ClientOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

export function withClientOptions(command: Command): Command {
  return command
    .option('--url <url>', 'server URL (else BERTH_URL, else the login file)')
    .option('--token <token>', 'API token (else BERTH_TOKEN, else the login file)')
    .option('--json', 'print JSON');
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
