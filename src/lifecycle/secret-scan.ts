import type { SandboxContext } from './sandbox-context.js';
import { BerthError } from '../errors/berth-error.js';

/**
 * Secret hygiene after a setup or maintenance script (DESIGN §3): secrets were only in the
 * script's process environment, but the script may have written one down (a token in `.npmrc`,
 * a credential in `.git/config`, a file in `/dev/shm` or `/run`). Processes it left are stopped
 * before this scan (leftover-processes.ts), so none holds a secret into the agent phase.
 *
 * Threat model: the script is trusted to use secrets, not to keep them out of files. The scan
 * covers the whole writable layer: every file on every writable mount of the sandbox (its root
 * file system, `/dev`, `/dev/shm`, any tmpfs) whose status changed since the script started, by
 * the kernel's change time (ctime) against a time the orchestrator holds (a script can set a
 * file's mtime, not its ctime), whatever its size or place; only `.git/objects` (compressed) is
 * skipped. Nothing the script can set turns it off: no marker file, no variable. It finds
 * verbatim values (each line of a multi-line value, from 4 characters); a value the script
 * transformed (encoded, compressed, split, reversed) is not found. A file outside the workspace
 * that holds a value of 8 characters or more is removed (so neither the agent nor the cache image
 * has it) and the log names it; one that holds only a shorter value (which may be a chance match)
 * fails the attempt, naming it; a file in the workspace is named in a warning (the results mark
 * it: src/lifecycle/results.ts). A scan that does not finish in time fails the attempt.
 */

const MIN_LENGTH = 4;
/** Values at least this long are taken as certain matches: files outside the workspace holding one are removed. */
const REMOVE_LENGTH = 8;

/** The fixed strings searched for: every line of every value long enough to be recognisable. */
export function scanPatterns(secretValues: readonly string[]): string[] {
  const out = new Set<string>();
  for (const value of secretValues) {
    for (const line of value.split('\n')) {
      const text = line.replace(/\r$/, '');
      if (text.length >= MIN_LENGTH && !/^-----(BEGIN|END) /.test(text)) out.add(text);
    }
  }
  return [...out];
}

// Positional arguments: $1 the script's start (seconds since the epoch), $2 workspace, then the
// script's side files, removed first. The patterns arrive as BERTH_SCAN_L* (long) and
// BERTH_SCAN_S* (short) variables of this exec only, never on a command line. Prints NUL-ended
// records `workspace:PATH`, `removed:PATH`, `kept:PATH` (could not be removed), `short:PATH`.
const SCAN_SCRIPT = String.raw`
since=$1; workspace=$2; shift 2
rm -f -- "$@"
long() { local n; for n in ${'$'}{!BERTH_SCAN_L@}; do printf '%s\n' "${'$'}{!n}"; done; }
short() { local n; for n in ${'$'}{!BERTH_SCAN_S@}; do printf '%s\n' "${'$'}{!n}"; done; }
[ -n "${'$'}{BERTH_SCAN_L0-}${'$'}{BERTH_SCAN_S0-}" ] || exit 0
roots=()
while read -r _ mnt type opts _; do
  case "$type" in
    proc|sysfs|cgroup|cgroup2|devpts|mqueue|securityfs|debugfs|tracefs|bpf|nsfs|configfs|pstore|autofs|binfmt_misc|fusectl) continue ;;
  esac
  case ",$opts," in *,ro,*) continue ;; esac
  roots+=("$(printf '%b' "$mnt")")
done < /proc/self/mounts
list=$(mktemp) || exit 5
find "${'$'}{roots[@]}" -xdev \( -path '*/.git/objects' -o -path "$list" \) -prune   -o -type f -newerct "@$since" -print0 2>/dev/null > "$list"
in_workspace() { case "$1" in "$workspace"|"$workspace"/*) return 0 ;; esac; return 1; }
if [ -n "${'$'}{BERTH_SCAN_L0-}" ]; then
  while IFS= read -r -d '' f; do
    if in_workspace "$f"; then printf 'workspace:%s\0' "$f"
    elif rm -f -- "$f"; then printf 'removed:%s\0' "$f"
    else printf 'kept:%s\0' "$f"; fi
  done < <(xargs -0 -r grep -lsZF -f <(long) -- < "$list" 2>/dev/null)
fi
if [ -n "${'$'}{BERTH_SCAN_S0-}" ]; then
  while IFS= read -r -d '' f; do
    [ -e "$f" ] || continue
    if in_workspace "$f"; then printf 'workspace:%s\0' "$f"; else printf 'short:%s\0' "$f"; fi
  done < <(xargs -0 -r grep -lsZF -f <(short) -- < "$list" 2>/dev/null)
fi
rm -f -- "$list"
true
`;

export interface SecretScanResult {
  /** Files in the workspace that hold a secret value (masked paths). */
  files: string[];
  /** Files outside the workspace that held one and were removed (masked paths). */
  removed: string[];
}

/**
 * Scans after a script; `since` is when the script started (ms since the epoch, the
 * orchestrator's clock, which the sandbox shares). Also removes `removeFiles` (the script's side
 * files, which hold secret values) first, in the same exec. Throws (failing the attempt) when a
 * file outside the workspace holds a value and was not removed, or when the scan did not finish.
 */
export async function scanForSecrets(
  ctx: SandboxContext,
  options: {
    since: number;
    secretValues: readonly string[];
    removeFiles: readonly string[];
    phase: string;
  },
): Promise<SecretScanResult> {
  const patterns = scanPatterns(options.secretValues);
  const env: Record<string, string> = {};
  let long = 0;
  let short = 0;
  for (const pattern of patterns) {
    if (pattern.length >= REMOVE_LENGTH) env[`BERTH_SCAN_L${long++}`] = pattern;
    else env[`BERTH_SCAN_S${short++}`] = pattern;
  }
  // File times are coarse (a few ms) and a clock step is possible: a little margin back.
  const since = Math.floor(options.since / 1000) - 2;
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    argv: [
      'bash',
      '-c',
      SCAN_SCRIPT,
      'berth-secret-scan',
      String(since),
      ctx.workdir,
      ...options.removeFiles,
    ],
    env,
    user: 'root',
    timeoutMs: 300_000,
    signal: ctx.signal,
    maxOutputBytes: 1024 * 1024,
  });
  if (result.timedOut || result.exitCode !== 0) {
    throw new BerthError(
      'task_failed',
      `the secret scan after the ${options.phase} script did not finish (${result.timedOut ? 'timed out' : `exit ${result.exitCode}`}); the agent does not run on files it did not check`,
      { reason: options.phase },
    );
  }
  const found = {
    workspace: new Set<string>(),
    removed: new Set<string>(),
    refused: new Set<string>(),
  };
  for (const record of result.stdout.split('\0')) {
    const colon = record.indexOf(':');
    if (colon < 0) continue;
    const kind = record.slice(0, colon);
    const path = ctx.masker.mask(record.slice(colon + 1));
    if (kind === 'workspace') found.workspace.add(path);
    else if (kind === 'removed') found.removed.add(path);
    else if (kind === 'kept' || kind === 'short') found.refused.add(path);
  }
  const files = [...found.workspace].sort();
  const removed = [...found.removed].sort();
  const refused = [...found.refused].sort();
  if (refused.length > 0) {
    throw new BerthError(
      'task_failed',
      `the ${options.phase} script left a secret value in ${refused.length} file(s) outside the workspace that Berth did not remove (a value under ${REMOVE_LENGTH} characters, or a file that cannot be removed): ${refused.slice(0, 20).join(', ')}; the agent would see them: remove them at the end of the script`,
      { reason: options.phase, files: refused },
    );
  }
  if (files.length > 0 || removed.length > 0) {
    const all = [...files, ...removed].sort();
    const what = [
      removed.length > 0
        ? `removed ${removed.join(', ')} (outside the workspace: neither the agent nor the cache image has them)`
        : '',
      files.length > 0
        ? `${files.join(', ')} in the workspace: part of the cache and visible to the agent`
        : '',
    ].filter((part) => part !== '');
    ctx.emit({
      type: 'warning',
      message: `the ${options.phase} script wrote a secret value into ${all.length} file(s): ${all.join(', ')}; ${what.join('; ')}`,
      details: { files: all, removed },
    });
  }
  return { files, removed };
}
