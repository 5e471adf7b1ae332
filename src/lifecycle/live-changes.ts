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
 * last one sent, a `files` event carries it (at most LIVE_FILES_MAX names, each cut to
 * LIVE_PATH_MAX characters, the event at most LIVE_EVENT_MAX_BYTES, with the total).
 *
 * Threat model. Untrusted: everything in the sandbox (file names, the repository, what its
 * processes print). The listing runs as a command of its own in the sandbox and only its numstat
 * output is read, bounded (the script prints the count, then at most LIVE_LISTING_BYTES of the
 * list; a larger list goes out cut, with its count). Names are masked like every logged text and
 * go out as event data (the UI shows them as text). Every event is stored and replayed, so the
 * live events of one attempt have a budget of their own (LIVE_FILES_BUDGET_BYTES, review 4 F2):
 * past it one warning says the live list stops, and it stops. A listing that fails or times out
 * sends nothing (the next one removes the index and its lock first, so one that timed out does
 * not stop the later ones); the results phase makes the authoritative list and diff as before.
 * Never two listings at once.
 */

/** How often the files are listed while the agent runs. */
export const LIVE_CHANGES_MS = 5000;
/** The most file names one `files` event carries. */
export const LIVE_FILES_MAX = 200;
/** The most characters of a path one `files` event carries (a longer one is cut, with "…"). */
export const LIVE_PATH_MAX = 256;
/** The most bytes (as JSON) of one `files` event: names past it are left out (`total` counts them). */
export const LIVE_EVENT_MAX_BYTES = 64 * 1024;
/** The most bytes (as JSON) of `files` events one attempt sends; then the live list stops. */
export const LIVE_FILES_BUDGET_BYTES = 4 * 1024 * 1024;
/** The most bytes of the numstat list the listing prints (after its count line). */
const LIVE_LISTING_BYTES = 192 * 1024;

// $1 base commit, $2 most bytes of the list, $3 state dir. Prints the number of changed files on
// its first line, then at most $2 bytes of the NUL-separated numstat list.
const LIVE_NUMSTAT_SCRIPT = String.raw`
set -e
mkdir -p -- "$3"
index="$3/live.index"
list="$3/live.numstat"
rm -f -- "$index.lock" "$list"
${STAGE_WORKING_TREE}
git diff --cached --numstat --no-renames -z "$1" -- >"$list"
rm -f -- "$index"
tr -cd '\0' <"$list" | wc -c
head -c "$2" -- "$list"
rm -f -- "$list"
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
  /** Bytes of `files` events sent so far (LIVE_FILES_BUDGET_BYTES). */
  private sent = 0;

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

  /** Waits for a listing under way, if any. */
  settled(): Promise<void> {
    return this.running ?? Promise.resolve();
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
      argv: [
        'bash',
        '-c',
        LIVE_NUMSTAT_SCRIPT,
        'berth-live-files',
        baseCommit,
        String(LIVE_LISTING_BYTES),
        SANDBOX_STATE_DIR,
      ],
      workdir,
      timeoutMs: 60_000,
      signal,
      maxOutputBytes: 256 * 1024,
    });
    if (result.exitCode !== 0 || result.timedOut || result.omittedBytes > 0 || this.stopped) return;
    const newline = result.stdout.indexOf('\n');
    const total = Number(result.stdout.slice(0, newline).trim());
    if (newline < 0 || !Number.isSafeInteger(total)) return;
    // A list cut by its byte bound ends inside a record: that record is left out.
    let body = result.stdout.slice(newline + 1);
    if (!body.endsWith('\0')) body = body.slice(0, body.lastIndexOf('\0') + 1);
    const files: ChangedFile[] = [];
    let bytes = 64;
    for (const file of parseNumstat(body).slice(0, LIVE_FILES_MAX)) {
      const masked = mask(file.path);
      const path =
        masked.length > LIVE_PATH_MAX ? `${masked.slice(0, LIVE_PATH_MAX - 1)}…` : masked;
      const entry = { ...file, path };
      bytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
      if (bytes > LIVE_EVENT_MAX_BYTES) break;
      files.push(entry);
    }
    const event: AttemptEventBody = { type: 'files', files, total: Math.max(total, files.length) };
    const text = JSON.stringify(event);
    if (text === this.last) return;
    this.last = text;
    this.sent += Buffer.byteLength(text);
    if (this.sent > LIVE_FILES_BUDGET_BYTES) {
      this.stopped = true;
      if (this.timer) clearInterval(this.timer);
      emit({
        type: 'warning',
        message: `the live list of changed files passed ${LIVE_FILES_BUDGET_BYTES / 1024 / 1024} MB of events; it stops here (the results list every changed file)`,
      });
      return;
    }
    emit(event);
  }
}
