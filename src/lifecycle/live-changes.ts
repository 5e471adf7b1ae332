import type { ChangedFile } from '../domain/task/attempt.js';
import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import { parseNumstat } from './results.js';
import { SANDBOX_STATE_DIR } from './setup-script.js';
import { STAGE_WORKING_TREE } from './stage-working-tree.js';

/**
 * The files an attempt has changed so far, while its agent phase runs (issue 13: "live log,
 * current command, changed files"): every LIVE_CHANGES_MS, and soon after each command ends,
 * the working tree is staged into a temporary index of its own (never the repository's, never
 * the results' one) and compared with the attempt's start commit; when the list differs from the
 * last one sent, a `files` event carries it (at most LIVE_FILES_MAX names, with the total).
 *
 * Threat model. Untrusted: everything in the sandbox (file names, the repository, what its
 * processes print). The listing runs as a command of its own in the sandbox and only its numstat
 * output is read, bounded (maxOutputBytes); names are masked like every logged text and go out
 * as event data (the UI shows them as text). A listing that fails or times out sends nothing:
 * the results phase makes the authoritative list and diff as before. Never two listings at once.
 */

/** How often the files are listed while the agent runs. */
export const LIVE_CHANGES_MS = 5000;
/** The most file names one `files` event carries. */
export const LIVE_FILES_MAX = 200;

// $1 base commit, $2 state dir.
const LIVE_NUMSTAT_SCRIPT = String.raw`
set -e
mkdir -p -- "$2"
index="$2/live.index"
${STAGE_WORKING_TREE}
git diff --cached --numstat --no-renames -z "$1" --
rm -f -- "$index"
`;

export interface LiveChangesOptions {
  runtime: SandboxRuntime;
  sandboxId: string;
  workdir: string;
  baseCommit: string;
  signal: AbortSignal;
  mask: (text: string) => string;
  emit: (event: AttemptEventBody) => void;
  /** While false the timer stops by itself (the agent phase ended, by an error too). */
  active: () => boolean;
  intervalMs?: number;
}

export class LiveChanges {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private last = '[]';

  constructor(private readonly options: LiveChangesOptions) {}

  /** Lists the files now and then every interval until `stop`. */
  start(): void {
    this.timer = setInterval(() => {
      if (this.options.active()) this.refresh();
      else void this.stop();
    }, this.options.intervalMs ?? LIVE_CHANGES_MS);
    this.timer.unref();
  }

  /** Lists the files soon (after a command ended); coalesced with a listing under way. */
  refresh(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.list()
      .catch(() => undefined)
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.refresh();
        }
      });
  }

  /** No more listings; waits for one under way (so no event follows the agent phase). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async list(): Promise<void> {
    const { runtime, sandboxId, workdir, baseCommit, signal, mask, emit } = this.options;
    if (signal.aborted || !this.options.active()) return;
    const result = await runtime.exec(sandboxId, {
      argv: ['bash', '-c', LIVE_NUMSTAT_SCRIPT, 'berth-live-files', baseCommit, SANDBOX_STATE_DIR],
      workdir,
      timeoutMs: 60_000,
      signal,
      maxOutputBytes: 256 * 1024,
    });
    if (result.exitCode !== 0 || result.timedOut || result.omittedBytes > 0 || this.stopped) return;
    const all: ChangedFile[] = parseNumstat(result.stdout).map((file) => ({
      ...file,
      path: mask(file.path),
    }));
    const files = all.slice(0, LIVE_FILES_MAX);
    const text = JSON.stringify([all.length, files]);
    if (text === this.last) return;
    this.last = text;
    emit({ type: 'files', files, total: all.length });
  }
}
