import { readFileSync } from 'node:fs';
import { ApiClient } from './api-client.js';
import { readLogin } from './login-file.js';
import type { BerthConfig, ConfigFlags } from '../config/config.js';
import { clientEnv, configDirOf, readVariable } from '../config/process-env.js';
import { BerthError } from '../errors/berth-error.js';
import {
  createInertStream,
  inertJson,
  inertText,
  type CarriageReturns,
  type InertStream,
} from './terminal-text.js';

/** What every command gets: where output goes and how to reach the server. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Standard input (for whether it is a terminal); process.stdin when not given. */
  stdin?: NodeJS.ReadableStream;
}

export interface ClientFlags {
  url?: string;
  token?: string;
}

export class CliContext {
  /** The exit code the command asks for (errors set theirs through BerthError). */
  exitCode = 0;
  /**
   * `--raw`: text is written as it came, control characters and all. Otherwise what the CLI
   * prints is made inert first (terminal-text.ts): it may quote a sandbox.
   */
  raw = false;

  /**
   * The configuration parser (config.ts, with its schemas): loaded by main.ts only for the
   * commands that read the configuration, so that the others start without it.
   */
  loadConfig?: (flags: ConfigFlags) => BerthConfig;

  constructor(readonly io: CliIo) {}

  config(flags: ConfigFlags = {}): BerthConfig {
    if (!this.loadConfig)
      throw new BerthError(
        'internal',
        'this command reads the configuration but main.ts did not load it (CONFIG_COMMANDS)',
      );
    return this.loadConfig(flags);
  }

  /** Server URL and token: flags, then BERTH_URL/BERTH_TOKEN, then the login file. */
  client(flags: ClientFlags): ApiClient {
    const env = clientEnv();
    const needLogin =
      (flags.url ?? env.url) === undefined || (flags.token ?? env.token) === undefined;
    const login = needLogin ? readLogin(configDirOf()) : undefined;
    const url = flags.url ?? env.url ?? login?.url;
    const token = flags.token ?? env.token ?? login?.token;
    if (url === undefined) {
      throw new BerthError(
        'invalid_input',
        'no server given: use --url, BERTH_URL, or `berth login`',
      );
    }
    if (token === undefined) {
      throw new BerthError(
        'unauthorized',
        'no token given: use --token, BERTH_TOKEN, or `berth login`',
      );
    }
    return new ApiClient(url, token);
  }

  out(text: string): void {
    this.write(this.io.stdout, text.endsWith('\n') ? text : `${text}\n`);
  }

  err(text: string): void {
    this.write(this.io.stderr, text.endsWith('\n') ? text : `${text}\n`);
  }

  json(value: unknown): void {
    this.io.stdout.write(`${inertJson(JSON.stringify(value, null, 2))}\n`);
  }

  /** Writes `text` as it is with `--raw`, else made inert (no newline added). */
  write(
    stream: NodeJS.WritableStream,
    text: string,
    carriageReturns: CarriageReturns = 'newline',
  ): void {
    stream.write(this.raw ? text : inertText(text, carriageReturns));
  }

  /** A writer for text that arrives in chunks (progress, a followed log): CRLFs kept whole. */
  streamTo(stream: NodeJS.WritableStream): (text: string) => void {
    if (this.raw) return (text) => void stream.write(text);
    const inert: InertStream = createInertStream();
    return (text) => void stream.write(inert.push(text));
  }

  /** Whether standard input is a terminal (`env test -it` needs one). */
  stdinIsTerminal(): boolean {
    const stdin = (this.io.stdin ?? process.stdin) as { isTTY?: boolean };
    return stdin.isTTY === true;
  }

  variable(name: string): string | undefined {
    return readVariable(name);
  }

  readFile(path: string): string {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      const reason =
        (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(error);
      throw new BerthError('invalid_input', `cannot read ${path}: ${reason}`);
    }
  }
}

/** Prints a table of rows with the given columns. */
export function formatTable(rows: Array<Record<string, string>>, columns: string[]): string {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((c) => c.toUpperCase())),
    ...rows.map((r) => line(columns.map((c) => r[c] ?? ''))),
  ].join('\n');
}
