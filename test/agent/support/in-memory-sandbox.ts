import { posix } from 'node:path';
import type {
  AgentExecOptions,
  AgentExecResult,
  AgentSandbox,
} from '../../../src/agent/agent-sandbox.js';
import { BerthError } from '../../../src/errors/berth-error.js';

export type ExecHandler = (
  argv: string[],
  options: AgentExecOptions,
) => Promise<Partial<AgentExecResult>> | Partial<AgentExecResult>;

/**
 * An AgentSandbox in memory, for the loop's pure logic (limits, loop detection, dispatch). Files
 * live in a map; the path-resolving and AGENTS.md-finding scripts the agent runs are answered from
 * it (no symbolic links here: the Docker tests cover those); any other command goes to `handler`.
 */
export class InMemorySandbox implements AgentSandbox {
  readonly workdir = '/workspace';
  readonly files = new Map<string, string>();
  readonly commands: { argv: string[]; options: AgentExecOptions }[] = [];

  constructor(
    files: Record<string, string> = {},
    public handler: ExecHandler = (argv) => ({ exitCode: 0, output: `ran: ${argv.join(' ')}\n` }),
  ) {
    for (const [path, text] of Object.entries(files))
      this.files.set(posix.join(this.workdir, path), text);
  }

  async exec(argv: string[], options: AgentExecOptions = {}): Promise<AgentExecResult> {
    if (argv[0] === 'bash' && argv[1] === '-c' && argv[3] === 'berth-resolve') {
      const rows = argv
        .slice(4)
        .map(
          (p) =>
            `${p}\t${this.files.has(p) ? 'file' : this.isDir(p) ? 'dir' : 'none'}\t${this.files.has(p) ? '644' : '-'}`,
        );
      return result({ output: `${rows.join('\n')}\n` });
    }
    if (argv[0] === 'bash' && argv[1] === '-c' && (argv[2] ?? '').includes('-name AGENTS.md')) {
      const found = [...this.files.keys()]
        .filter((p) => p.endsWith('/AGENTS.md'))
        .map((p) => `./${posix.relative(this.workdir, p)}`);
      return result({ output: found.map((f) => `${f}\n`).join('') });
    }
    this.commands.push({ argv, options });
    return result(await this.handler(argv, options));
  }

  readFile(path: string): Promise<Buffer> {
    const text = this.files.get(path);
    if (text === undefined)
      return Promise.reject(new BerthError('not_found', `${path} does not exist`));
    return Promise.resolve(Buffer.from(text));
  }

  writeFile(path: string, data: Buffer | string): Promise<void> {
    this.files.set(path, data.toString());
    return Promise.resolve();
  }

  deleteFile(path: string): Promise<void> {
    this.files.delete(path);
    return Promise.resolve();
  }

  private isDir(path: string): boolean {
    return path === this.workdir || [...this.files.keys()].some((p) => p.startsWith(`${path}/`));
  }
}

function result(partial: Partial<AgentExecResult>): AgentExecResult {
  return { exitCode: 0, output: '', omittedBytes: 0, timedOut: false, durationMs: 1, ...partial };
}

/** A handler whose commands run until they are cancelled (the signal) or time out. */
export const hangingHandler: ExecHandler = (_argv, options) =>
  new Promise((resolve, reject) => {
    const timer =
      options.timeoutMs !== undefined
        ? setTimeout(
            () => resolve({ exitCode: 137, timedOut: true, output: 'started\n' }),
            options.timeoutMs,
          )
        : undefined;
    options.signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new BerthError('cancelled', 'the command was cancelled'));
    });
  });
