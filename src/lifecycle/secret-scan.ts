import type { SandboxContext } from './sandbox-context.js';
import { BerthError } from '../errors/berth-error.js';

/**
 * Secret hygiene after a setup or maintenance script (DESIGN §3): secrets were only in the
 * script's process environment, but the script may have written one down (a token in `.npmrc`,
 * a credential in `.git/config`, a file in `/run`). Processes it left are ended before this scan
 * (leftover-processes.ts restarts the sandbox), so none holds a secret into the agent phase.
 *
 * Threat model: the script is trusted to use secrets, not to keep them out of files, nor to leave
 * the scan working: it runs as root and may remove `/dev/fd`, make `/tmp` a link into a full
 * tmpfs, fill a disk. The scan runs after the sandbox was restarted (leftover-processes.ts: no
 * process of the script runs, the tmpfs mounts are empty) and covers the whole writable layer:
 * every entry on every writable mount whose status changed since the script started, by the
 * kernel's change time (ctime) against a time the orchestrator holds (a script can set a file's
 * mtime, not its ctime), whatever its size or place: its contents (regular files), its name, a
 * symbolic link's target, its extended attributes (names and values, with the image's perl; an
 * image without perl gets a warning). Only the workspace's own `.git/objects` (compressed) is
 * skipped; the repository's history is a documented limit. Nothing the script can set turns it
 * off (no marker file, no variable), and nothing it can break turns it into "nothing found": the
 * scan needs no /dev/fd, temporary file or free space, checks every tool's exit status and must
 * report its end with the count of entries it checked, or the attempt fails. It finds verbatim
 * values (each line of a multi-line value, from 4 characters); a value the script transformed
 * (encoded, compressed, split, reversed, committed to git) is not found, and a script that
 * replaced bash, find, grep or perl can blind it. An entry outside the workspace that holds a
 * value of 8 characters or more is removed (an extended attribute: the attribute), so neither the
 * agent nor the cache image has it, and the log names it; one that holds only a shorter value
 * (which may be a chance match) fails the attempt, naming it; an entry in the workspace is named
 * in a warning (the results mark it: src/lifecycle/results.ts). A scan that does not finish in
 * time fails the attempt.
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
// BERTH_SCAN_S* (short) variables of this exec only, never on the exec's command line. Prints
// NUL-ended records `workspace:PATH`, `removed:PATH`, `kept:PATH` (could not be removed),
// `short:PATH`, `noxattr:` (no perl: extended attributes not read), then `scanned:N` and, when
// every tool exited cleanly, `end:`. Nothing here needs /dev/fd (no process substitution), a
// writable /tmp (no temporary file, no here-string) or a free byte on any disk: the file list
// goes through a pipe, and any tool's failure is an exit status other than 0.
const SCAN_SCRIPT = String.raw`
set -f
export LC_ALL=C
since=$1; workspace=$2; shift 2
if [ $# -gt 0 ]; then rm -f -- "$@" || exit 5; fi
long=(); short=(); largs=(); sargs=()
for n in ${'$'}{!BERTH_SCAN_L@}; do long+=("${'$'}{!n}"); largs+=(-e "${'$'}{!n}"); done
for n in ${'$'}{!BERTH_SCAN_S@}; do short+=("${'$'}{!n}"); sargs+=(-e "${'$'}{!n}"); done
if [ ${'$'}{#long[@]} -eq 0 ] && [ ${'$'}{#short[@]} -eq 0 ]; then printf 'scanned:0\0end:\0'; exit 0; fi
roots=()
while read -r _ mnt type opts _; do
  case "$type" in
    proc|sysfs|cgroup|cgroup2|devpts|mqueue|securityfs|debugfs|tracefs|bpf|nsfs|configfs|pstore|autofs|binfmt_misc|fusectl) continue ;;
  esac
  case ",$opts," in *,ro,*) continue ;; esac
  printf -v m '%b' "$mnt"
  roots+=("$m")
done < /proc/self/mounts
[ ${'$'}{#roots[@]} -gt 0 ] || { echo 'no writable mount found' >&2; exit 5; }
in_workspace() { case "$1" in "$workspace"|"$workspace"/*) return 0 ;; esac; return 1; }
hit=
match() {
  local p
  for p in "${'$'}{long[@]}"; do case "$1" in *"$p"*) hit=long; return 0 ;; esac; done
  for p in "${'$'}{short[@]}"; do case "$1" in *"$p"*) hit=short; return 0 ;; esac; done
  return 1
}
gone=()
# $1 path, $2 long|short: reported, or removed outside the workspace (a long value only).
found() {
  if in_workspace "$1"; then printf 'workspace:%s\0' "$1"
  elif [ "$2" = short ]; then printf 'short:%s\0' "$1"
  elif rm -rf -- "$1"; then printf 'removed:%s\0' "$1"; gone+=("$1")
  else printf 'kept:%s\0' "$1"; fi
}
under_gone() {
  local g
  for g in "${'$'}{gone[@]}"; do case "$1" in "$g"/*) return 0 ;; esac; done
  return 1
}
batch=()
grep_batch() {
  local f s rest=()
  if [ ${'$'}{#long[@]} -gt 0 ]; then
    grep -lZF "${'$'}{largs[@]}" -- "${'$'}{batch[@]}" | while IFS= read -r -d '' f; do found "$f" long; done
    s=("${'$'}{PIPESTATUS[@]}")
    [ "${'$'}{s[0]}" -le 1 ] && [ "${'$'}{s[1]}" = 0 ] || { echo "grep failed (exit ${'$'}{s[0]})" >&2; return 8; }
  fi
  if [ ${'$'}{#short[@]} -gt 0 ]; then
    for f in "${'$'}{batch[@]}"; do [ -e "$f" ] && rest+=("$f"); done
    [ ${'$'}{#rest[@]} -gt 0 ] || return 0
    grep -lZF "${'$'}{sargs[@]}" -- "${'$'}{rest[@]}" | while IFS= read -r -d '' f; do found "$f" short; done
    s=("${'$'}{PIPESTATUS[@]}")
    [ "${'$'}{s[0]}" -le 1 ] && [ "${'$'}{s[1]}" = 0 ] || { echo "grep failed (exit ${'$'}{s[0]})" >&2; return 8; }
  fi
  batch=()
}
# Extended attributes (names and values) of $@, with perl's syscall (bash cannot read them).
XATTR_PERL='
use POSIX ();
my $ws = shift;
my $arch = (POSIX::uname())[4];
my %calls = (x86_64 => [194, 192, 197], aarch64 => [12, 9, 15]);
my $nr = $calls{$arch} or die "extended attributes: no system call numbers for $arch\n";
my (@long, @short);
for (sort keys %ENV) { push @long, $ENV{$_} if /^BERTH_SCAN_L\d+$/; push @short, $ENV{$_} if /^BERTH_SCAN_S\d+$/ }
my $has = sub { my $t = shift; for (@_) { return 1 if index($t, $_) >= 0 } 0 };
local $/ = "\0";
while (defined(my $p = <STDIN>)) {
  chomp $p;
  my $size = syscall($nr->[0], $p, 0, 0);
  if ($size < 0) { next if $!{ENOENT} || $!{ENOTSUP} || $!{EOPNOTSUPP}; die "llistxattr $p: $!\n" }
  next if $size == 0;
  my $names = "\0" x ($size + 1);
  my $got = syscall($nr->[0], $p, $names, $size + 1);
  die "llistxattr $p: $!\n" if $got < 0;
  for my $name (grep { length } split /\0/, substr($names, 0, $got)) {
    my $vsize = syscall($nr->[1], $p, $name, 0, 0);
    die "lgetxattr $p $name: $!\n" if $vsize < 0;
    my $value = "\0" x ($vsize + 1);
    my $len = syscall($nr->[1], $p, $name, $value, $vsize + 1);
    die "lgetxattr $p $name: $!\n" if $len < 0;
    my $text = $name . "\0" . substr($value, 0, $len);
    my $kind = $has->($text, @long) ? "long" : $has->($text, @short) ? "short" : next;
    if ($p eq $ws || index($p, "$ws/") == 0) { print "workspace:$p\0" }
    elsif ($kind eq "short") { print "short:$p\0" }
    elsif (syscall($nr->[2], $p, $name) == 0) { print "removed:$p\0" }
    else { print "kept:$p\0" }
  }
}
'
scan() {
  local recs i type path link n=0 bytes=0 xs=() s
  mapfile -d '' recs || return 7
  for (( i = 0; i + 2 < ${'$'}{#recs[@]}; i += 3 )); do
    type=${'$'}{recs[i]}; path=${'$'}{recs[i+1]}; link=${'$'}{recs[i+2]}
    [ ${'$'}{#gone[@]} -gt 0 ] && under_gone "$path" && continue
    (( n++ ))
    # A value in the entry's name, or in a symbolic link's target.
    if match "${'$'}{path##*/}" || { [ "$type" = l ] && match "$link"; }; then
      found "$path" "$hit"
      in_workspace "$path" || continue
    fi
    xs+=("$path")
    [ "$type" = f ] || continue
    batch+=("$path")
    (( bytes += ${'$'}{#path} + 1 ))
    if [ ${'$'}{#batch[@]} -ge 1000 ] || [ "$bytes" -ge 65536 ]; then grep_batch || return; bytes=0; fi
  done
  if [ ${'$'}{#batch[@]} -gt 0 ]; then grep_batch || return; fi
  if [ ${'$'}{#xs[@]} -gt 0 ]; then
    if command -v perl > /dev/null; then
      printf '%s\0' "${'$'}{xs[@]}" | perl -e "$XATTR_PERL" "$workspace"
      s=("${'$'}{PIPESTATUS[@]}")
      [ "${'$'}{s[1]}" = 0 ] || { echo "the extended attribute scan failed (exit ${'$'}{s[1]})" >&2; return 9; }
    else
      printf 'noxattr:\0'
    fi
  fi
  printf 'scanned:%s\0' "$n"
}
# Only the workspace's own repository's objects are skipped (compressed: a verbatim search finds
# nothing there); every other .git/objects is searched like any directory.
find "${'$'}{roots[@]}" -xdev -path "$workspace/.git/objects" -prune -o -newerct "@$since" -printf '%y\0%p\0%l\0' | scan
st=("${'$'}{PIPESTATUS[@]}")
[ "${'$'}{st[0]}" = 0 ] || { echo "find failed (exit ${'$'}{st[0]})" >&2; exit 6; }
[ "${'$'}{st[1]}" = 0 ] || exit "${'$'}{st[1]}"
printf 'end:\0'
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
  const found = {
    workspace: new Set<string>(),
    removed: new Set<string>(),
    refused: new Set<string>(),
  };
  let scanned: number | undefined;
  let ended = false;
  let xattrs = true;
  for (const record of result.stdout.split('\0')) {
    const colon = record.indexOf(':');
    if (colon < 0) continue;
    const kind = record.slice(0, colon);
    const value = record.slice(colon + 1);
    const path = ctx.masker.mask(value);
    if (kind === 'workspace') found.workspace.add(path);
    else if (kind === 'removed') found.removed.add(path);
    else if (kind === 'kept' || kind === 'short') found.refused.add(path);
    else if (kind === 'scanned' && /^\d+$/.test(value)) scanned = Number(value);
    else if (kind === 'noxattr') xattrs = false;
    else if (kind === 'end') ended = true;
  }
  // Only a scan that says it reached its end, with every tool's status checked, counts: an error
  // (a tool missing or failing, /dev/fd removed, a full disk) is a failed attempt, never "nothing
  // found".
  if (result.timedOut || result.exitCode !== 0 || !ended || scanned === undefined) {
    const why = result.timedOut
      ? 'timed out'
      : result.exitCode !== 0
        ? `exit ${result.exitCode}: ${ctx.masker.mask(result.stderr.trim().split('\n').slice(-3).join(' / ')) || 'no message'}`
        : 'it did not report its end';
    throw new BerthError(
      'task_failed',
      `the secret scan after the ${options.phase} script did not finish (${why}); the agent does not run on files it did not check`,
      { reason: options.phase },
    );
  }
  ctx.emit({
    type: 'log',
    stream: 'system',
    text: `secret scan after the ${options.phase} script: ${scanned} changed file(s) and entries checked (contents, names, link targets${xattrs ? ', extended attributes' : ''})\n`,
  });
  if (!xattrs)
    ctx.emit({
      type: 'warning',
      message: `the secret scan after the ${options.phase} script did not read extended attributes: the image has no perl`,
    });
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
