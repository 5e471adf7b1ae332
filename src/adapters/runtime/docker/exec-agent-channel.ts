import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { BerthError } from '../../../errors/berth-error.js';
import type { ExecOptions, ExecResult } from '../../../ports/sandbox-runtime.js';
import { EXEC_AGENT_SOURCE } from './exec-agent-source.js';
import { ExecCollector, commandOf } from './exec-collector.js';
import { FrameParser, agentFrame, packStrings } from './frame-parser.js';

const HELLO_TIMEOUT_MS = 30_000;
/** After a kill, how long to wait for the agent to report the exit before giving up on it. */
const KILL_GRACE_MS = 5_000;

interface PendingRun {
  collector: ExecCollector;
  settle: (outcome: { exitCode: number } | { error: BerthError }) => void;
}

/**
 * One long-lived exec into a sandbox running the exec agent (see exec-agent-source.ts); commands
 * are multiplexed over its attached stdin/stdout. `open` resolves to null when the sandbox cannot
 * run the agent (no perl), so the caller falls back to plain Engine-API execs.
 */
export class ExecAgentChannel {
  private nextId = 1;
  private readonly runs = new Map<number, PendingRun>();
  private closedError: BerthError | undefined;

  private constructor(
    private readonly stream: Duplex,
    private readonly onClosed: (channel: ExecAgentChannel) => Promise<BerthError>,
  ) {}

  static async open(
    container: Docker.Container,
    defaultUser: string,
    onClosed: (channel: ExecAgentChannel) => Promise<BerthError>,
  ): Promise<ExecAgentChannel | null> {
    const exec = await container.exec({
      Cmd: ['perl', '-e', EXEC_AGENT_SOURCE, defaultUser],
      User: '0:0',
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const stream = await exec.start({ hijack: true, stdin: true });
    const channel = new ExecAgentChannel(stream, onClosed);
    const hello = await channel.waitForHello();
    if (hello === 'ready') return channel;
    stream.destroy();
    if (hello === 'ended') return null;
    // Slow (a loaded machine), not unable: fail this call, let the next one try again.
    throw new BerthError(
      'runtime_unavailable',
      `the exec agent did not start within ${HELLO_TIMEOUT_MS / 1000} s`,
    );
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** `ready`; `ended`: the exec ended without a hello (no perl in the image); `slow`: timed out. */
  private waitForHello(): Promise<'ready' | 'ended' | 'slow'> {
    return new Promise((resolve) => {
      let helloSeen = false;
      const agentParser = new FrameParser('agent', (frame) => {
        if (!helloSeen && frame.type === 0x48 /* H */) {
          helloSeen = true;
          clearTimeout(timer);
          resolve('ready');
          return;
        }
        this.onAgentFrame(frame.type, frame.id, frame.payload);
      });
      const dockerParser = new FrameParser('docker', (frame) => {
        if (frame.type === 1) agentParser.push(frame.payload);
      });
      const timer = setTimeout(() => {
        if (!helloSeen) resolve('slow');
      }, HELLO_TIMEOUT_MS);
      this.stream.on('data', (chunk: Buffer) => dockerParser.push(chunk));
      const ended = (): void => {
        clearTimeout(timer);
        if (!helloSeen) {
          resolve('ended');
          return;
        }
        void this.handleClose();
      };
      this.stream.on('end', ended);
      this.stream.on('close', ended);
      this.stream.on('error', ended);
    });
  }

  private async handleClose(): Promise<void> {
    if (this.closedError !== undefined) return;
    this.closedError = new BerthError('sandbox_gone', 'the exec channel into the sandbox closed');
    const error = await this.onClosed(this);
    this.closedError = error;
    for (const run of this.runs.values()) run.settle({ error });
    this.runs.clear();
  }

  private onAgentFrame(type: number, id: number, payload: Buffer): void {
    const run = this.runs.get(id);
    if (run === undefined) return;
    if (type === 0x31 /* 1 */) run.collector.push('stdout', payload);
    else if (type === 0x32 /* 2 */) run.collector.push('stderr', payload);
    else if (type === 0x58 /* X */) {
      this.runs.delete(id);
      run.settle({ exitCode: Number.parseInt(payload.toString('latin1'), 10) });
    }
  }

  private send(frame: Buffer): void {
    if (this.closedError === undefined) this.stream.write(frame);
  }

  run(options: ExecOptions): Promise<ExecResult> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const argv = commandOf(options);
    const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const marker = randomBytes(8).toString('hex');
    const id = this.nextId++;
    const collector = new ExecCollector(options);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(cancelled());

    return new Promise<ExecResult>((resolve, reject) => {
      let timedOut = false;
      let aborted = false;
      let graceTimer: NodeJS.Timeout | undefined;
      const kill = (): void => {
        this.send(agentFrame('K', id, Buffer.from('KILL')));
        graceTimer ??= setTimeout(() => {
          this.runs.delete(id);
          finish({ exitCode: 137 });
        }, KILL_GRACE_MS);
      };
      const timeoutTimer =
        options.timeoutMs !== undefined
          ? setTimeout(() => {
              timedOut = true;
              kill();
            }, options.timeoutMs)
          : undefined;
      const onAbort = (): void => {
        aborted = true;
        kill();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const finish = (outcome: { exitCode: number } | { error: BerthError }): void => {
        clearTimeout(timeoutTimer);
        clearTimeout(graceTimer);
        signal?.removeEventListener('abort', onAbort);
        if ('error' in outcome) reject(outcome.error);
        else if (aborted) reject(cancelled());
        else resolve(collector.result(outcome.exitCode, timedOut));
      };
      this.runs.set(id, { collector, settle: finish });

      const frames = [
        agentFrame(
          'R',
          id,
          packStrings([
            String(argv.length),
            ...argv,
            String(env.length),
            ...env,
            options.workdir ?? '',
            options.user ?? '',
            marker,
          ]),
        ),
      ];
      if (options.stdin !== undefined) {
        const data =
          typeof options.stdin === 'string' ? Buffer.from(options.stdin, 'utf8') : options.stdin;
        for (let offset = 0; offset < data.length; offset += 1024 * 1024) {
          frames.push(agentFrame('I', id, data.subarray(offset, offset + 1024 * 1024)));
        }
      }
      frames.push(agentFrame('C', id));
      this.send(Buffer.concat(frames));
    });
  }

  close(): void {
    this.closedError ??= new BerthError('sandbox_gone', 'the exec channel was closed');
    for (const run of this.runs.values()) run.settle({ error: this.closedError });
    this.runs.clear();
    this.stream.end();
    this.stream.destroy();
  }
}

function cancelled(): BerthError {
  return new BerthError('cancelled', 'the command was cancelled; its process tree was killed');
}
