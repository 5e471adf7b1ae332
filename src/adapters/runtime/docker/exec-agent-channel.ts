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
 * run the agent (no perl, or it cannot make itself undumpable), so the caller falls back to plain
 * Engine-API execs.
 *
 * Threat model. What comes back on the channel is written by a program inside the sandbox: the
 * agent, which sandbox commands cannot reach (it is not dumpable, and the sandbox has no
 * CAP_SYS_PTRACE, so its /proc/<pid>/fd, mem and environ are closed to them, root included), but
 * which is itself the image's perl: an image committed from a hostile sandbox can replace it. So
 * the channel trusts none of it:
 *  - a frame above MAX_AGENT_FRAME_BYTES, a type the agent never sends, a second hello, a frame
 *    for a command never started, or an exit code that is not 0-255 is a protocol violation: the
 *    channel is dropped at once, every command on it fails with the reason (a BerthError
 *    `task_failed`, details `reason: 'exec_channel'`), and `onViolation` tells the runtime, which
 *    refuses every later command in that sandbox with the same error (before the hello, anything
 *    else only means the agent did not start: the Engine-API path, which reads no frame from the
 *    sandbox, is taken instead);
 *  - output is bounded by the collector (head and tail), whatever the agent sends;
 *  - time limits are kept by timers here, not by the agent: at a command's time-out (or abort) the
 *    agent is asked to kill it, and KILL_GRACE_MS later the command ends as killed (137) whether
 *    or not the agent answered; an agent that did not answer is dropped (`onClosed`) so later
 *    commands do not wait on it. The attempt's own deadline removes the whole sandbox.
 * What an agent that is itself hostile can still do: report made-up output and exit codes for the
 * commands it runs, as any program the sandbox replaced can.
 */
export class ExecAgentChannel {
  private nextId = 1;
  private readonly runs = new Map<number, PendingRun>();
  private closedError: BerthError | undefined;
  private helloSeen = false;

  private constructor(
    private readonly stream: Duplex,
    private readonly onClosed: (channel: ExecAgentChannel) => Promise<BerthError>,
    private readonly onViolation: (error: BerthError) => void,
  ) {}

  static async open(
    container: Docker.Container,
    defaultUser: string,
    onClosed: (channel: ExecAgentChannel) => Promise<BerthError>,
    onViolation: (error: BerthError) => void = () => undefined,
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
    const channel = new ExecAgentChannel(stream, onClosed, onViolation);
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

  /**
   * `ready`; `ended`: the exec ended without a hello (no perl in the image, or the agent refused
   * to run, or what came first was no frame of the agent); `slow`: timed out.
   */
  private waitForHello(): Promise<'ready' | 'ended' | 'slow'> {
    return new Promise((resolve) => {
      const agentParser = new FrameParser(
        'agent',
        (frame) => this.onAgentFrame(frame.type, frame.id, frame.payload),
        (reason) => this.violate(reason),
      );
      const dockerParser = new FrameParser(
        'docker',
        (frame) => {
          if (frame.type === 1) agentParser.push(frame.payload);
        },
        (reason) => this.violate(`the engine's stream: ${reason}`),
      );
      const timer = setTimeout(() => {
        if (!this.helloSeen) resolve('slow');
      }, HELLO_TIMEOUT_MS);
      this.onHello = () => {
        clearTimeout(timer);
        resolve('ready');
      };
      this.onNoHello = () => {
        clearTimeout(timer);
        resolve('ended');
      };
      this.stream.on('data', (chunk: Buffer) => dockerParser.push(chunk));
      const ended = (): void => {
        clearTimeout(timer);
        if (!this.helloSeen) {
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

  private onHello: () => void = () => undefined;
  private onNoHello: () => void = () => undefined;

  private async handleClose(): Promise<void> {
    if (this.closedError !== undefined) return;
    this.closedError = new BerthError('sandbox_gone', 'the exec channel into the sandbox closed');
    const error = await this.onClosed(this);
    this.closedError = error;
    for (const run of this.runs.values()) run.settle({ error });
    this.runs.clear();
  }

  /**
   * Drops the channel for a protocol violation: every command on it fails with the reason. Before
   * the hello it only means the agent did not start (the engine's own message when `perl` is
   * missing arrives where the hello should): the caller takes the Engine-API path.
   */
  private violate(reason: string): void {
    if (this.closedError?.details.reason === 'exec_channel') return;
    if (!this.helloSeen) {
      this.closedError = new BerthError('runtime_unavailable', 'the exec agent did not start');
      this.stream.destroy();
      this.onNoHello();
      return;
    }
    const error = new BerthError(
      'task_failed',
      `the exec channel into the sandbox broke its protocol (${reason}); the channel was dropped, and no more commands run in this sandbox`,
      { reason: 'exec_channel' },
    );
    this.closedError = error;
    for (const run of this.runs.values()) run.settle({ error });
    this.runs.clear();
    this.stream.destroy();
    this.onViolation(error);
  }

  private onAgentFrame(type: number, id: number, payload: Buffer): void {
    if (!this.helloSeen) {
      if (type !== 0x48 /* H */ || id !== 0) {
        this.violate(`the first frame is not a hello (type ${type})`);
        return;
      }
      this.helloSeen = true;
      this.onHello();
      return;
    }
    if (type !== 0x31 /* 1 */ && type !== 0x32 /* 2 */ && type !== 0x58 /* X */) {
      this.violate(`a frame of an unknown type (${type})`);
      return;
    }
    if (id === 0 || id >= this.nextId) {
      this.violate(`a frame for command ${id}, which was never started`);
      return;
    }
    // A command already ended here (killed after its grace period) may still send late frames.
    const run = this.runs.get(id);
    if (run === undefined) return;
    if (type === 0x31) run.collector.push('stdout', payload);
    else if (type === 0x32) run.collector.push('stderr', payload);
    else {
      const text = payload.toString('latin1');
      const code = /^\d{1,3}$/.test(text) ? Number(text) : Number.NaN;
      if (!(code <= 255)) {
        this.violate('an exit frame without an exit code of 0-255');
        return;
      }
      this.runs.delete(id);
      run.settle({ exitCode: code });
    }
  }

  /** The agent did not answer a kill in time: stop waiting on it (see the threat model). */
  private unresponsive(): void {
    if (this.closedError !== undefined) return;
    this.stream.destroy();
    void this.handleClose();
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
          this.unresponsive();
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
