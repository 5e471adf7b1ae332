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
 * symbolic link's target, its extended attributes (names and values; on an architecture whose
 * system call numbers the scan does not know, a warning says they were not read). Only the workspace's own `.git/objects` (compressed) is
 * skipped; the repository's history is a documented limit. Nothing the script can set turns it
 * off (no marker file, no variable), and nothing it can break turns it into "nothing found": the
 * scan needs no /dev/fd, temporary file or free space, checks every tool's exit status and must
 * report its end with the count of entries it checked, or the attempt fails. It finds verbatim
 * values (each line of a multi-line value, from 4 characters); a value the script transformed
 * (encoded, compressed, split, reversed, committed to git) is not found, and a script that
 * replaced bash, find or perl (the search is a perl program, fed by find) can blind it. An entry outside the workspace that holds a
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

// The search itself, in perl (in every Debian-based image: perl-base is Essential, and the exec
// agent needs it too). Reads find's records (type, path, link target; NUL-ended) on stdin; $1 is
// the workspace; the patterns come from BERTH_SCAN_L* (long) and BERTH_SCAN_S* (short). For each
// entry: its name and a link's target, a regular file's contents (read in 1 MiB chunks, a window
// kept across them), its extended attributes (names and values, by system call). Removals wait
// for the end of the list (find is still walking until then). Dies (a status other than 0) on
// any error it meets: a file it cannot open or read, an attribute it cannot get.
const SCAN_PERL = String.raw`
use strict; use warnings; use POSIX ();
my $ws = shift;
my (@long, @short);
for (sort keys %ENV) { push @long, $ENV{$_} if /^BERTH_SCAN_L\d+$/; push @short, $ENV{$_} if /^BERTH_SCAN_S\d+$/ }
my $max = 1; for (@long, @short) { $max = length if length > $max }
my %calls = (x86_64 => [194, 192, 197], aarch64 => [12, 9, 15]);
my $nr = $calls{(POSIX::uname())[4]};
print "noxattr:\0" unless $nr;
my ($lre, $sre) = map { my $l = $_; @$l ? do { my $j = join("|", map { quotemeta } @$l); qr/$j/ } : undef } \@long, \@short;
sub kind { my $t = shift; return "long" if $lre && $t =~ $lre; return "short" if $sre && $t =~ $sre; return "" }
sub inws { my $p = shift; return $p eq $ws || index($p, "$ws/") == 0 }
my (@todo, %seen);
sub found {
  my ($p, $k, @how) = @_;
  if (inws($p)) { print "workspace:$p\0" unless $seen{"w$p"}++; return }
  if ($k eq "short") { print "short:$p\0" unless $seen{"s$p"}++; return }
  push @todo, [$p, @how];
}
sub xsize { my $s = syscall($nr->[$_[0]], @_[1 .. $#_], 0, 0); die "extended attributes of $_[1]: $!\n" if $s < 0; return $s }
local $/ = "\0";
my $n = 0;
while (defined(my $type = <STDIN>)) {
  my $p = <STDIN>; my $link = <STDIN>;
  die "the list of files ended mid-record\n" unless defined $link;
  chomp($type, $p, $link);
  $n++;
  (my $base = $p) =~ s{.*/}{}s;
  my $k = kind($base) || ($type eq "l" ? kind($link) : "");
  found($p, $k, "rm") if $k;
  if ($type eq "f") {
    open(my $h, "<:raw", $p) or die "open $p: $!\n";
    my ($carry, $hit) = ("", "");
    while (1) {
      my $got = sysread($h, my $chunk, 1 << 20);
      die "read $p: $!\n" unless defined $got;
      last if $got == 0;
      my $buf = $carry . $chunk;
      my $kk = kind($buf);
      if ($kk eq "long") { $hit = "long"; last }
      $hit = "short" if $kk;
      $carry = length($buf) >= $max ? substr($buf, length($buf) - $max + 1) : $buf;
    }
    close $h;
    found($p, $hit, "unlink") if $hit;
  }
  next unless $nr;
  my $size = syscall($nr->[0], $p, 0, 0);
  if ($size < 0) { next if $!{ENOENT} || $!{ENOTSUP} || $!{EOPNOTSUPP}; die "extended attributes of $p: $!\n" }
  next if $size == 0;
  my $names = "\0" x ($size + 1);
  $size = syscall($nr->[0], $p, $names, $size + 1);
  die "extended attributes of $p: $!\n" if $size < 0;
  for my $name (grep { length } split /\0/, substr($names, 0, $size)) {
    my $vsize = xsize(1, $p, $name);
    my $value = "\0" x ($vsize + 1);
    my $len = syscall($nr->[1], $p, $name, $value, $vsize + 1);
    die "extended attribute $name of $p: $!\n" if $len < 0;
    my $kx = kind($name) || kind(substr($value, 0, $len));
    found($p, $kx, "xattr", $name) if $kx;
  }
}
my @gone;
for (@todo) {
  my ($p, $how, $name) = @$_;
  my $done;
  if (grep { $p eq $_ || index($p, "$_/") == 0 } @gone) { $done = 1 }
  elsif ($how eq "rm") { $done = system("rm", "-rf", "--", $p) == 0; push @gone, $p if $done }
  elsif ($how eq "unlink") { $done = unlink($p) == 1; push @gone, $p if $done }
  else { $done = syscall($nr->[2], $p, $name) == 0 }
  my $rec = ($done ? "removed:" : "kept:") . $p;
  print "$rec\0" unless $seen{$rec}++;
}
print "scanned:$n\0";
`;

// Positional arguments: $1 the script's start (seconds since the epoch), $2 workspace, $3 the
// search (SCAN_PERL), then the script's side files, removed first. The patterns arrive as
// BERTH_SCAN_L* (long) and BERTH_SCAN_S* (short) variables of this exec only, never on a command
// line. Prints NUL-ended records `workspace:PATH`, `removed:PATH`, `kept:PATH` (could not be
// removed), `short:PATH`, `noxattr:` (attributes not read on this architecture), `scanned:N`,
// and, when find and the search both exited cleanly, `end:`. Nothing here needs /dev/fd (no
// process substitution), a writable /tmp (no temporary file, no here-string) or free space.
const SCAN_SCRIPT = String.raw`
set -f
export LC_ALL=C
since=$1; workspace=$2; search=$3; shift 3
if [ $# -gt 0 ]; then rm -f -- "$@" || exit 5; fi
if [ -z "${'$'}{!BERTH_SCAN_L*}${'$'}{!BERTH_SCAN_S*}" ]; then printf 'scanned:0\0end:\0'; exit 0; fi
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
# Only the workspace's own repository's objects are skipped (compressed: a verbatim search finds
# nothing there); every other .git/objects is searched like any directory.
find "${'$'}{roots[@]}" -xdev -path "$workspace/.git/objects" -prune -o -newerct "@$since" -printf '%y\0%p\0%l\0' | perl -e "$search" "$workspace"
st=("${'$'}{PIPESTATUS[@]}")
[ "${'$'}{st[0]}" = 0 ] || { echo "find failed (exit ${'$'}{st[0]})" >&2; exit 6; }
[ "${'$'}{st[1]}" = 0 ] || { echo "the search failed (exit ${'$'}{st[1]})" >&2; exit 7; }
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
      SCAN_PERL,
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
  if (patterns.length > 0)
    ctx.emit({
      type: 'log',
      stream: 'system',
      text: `secret scan after the ${options.phase} script: ${scanned} changed file(s) and entries checked (contents, names, link targets${xattrs ? ', extended attributes' : ''})\n`,
    });
  if (!xattrs)
    ctx.emit({
      type: 'warning',
      message: `the secret scan after the ${options.phase} script did not read extended attributes (no system call numbers for this architecture)`,
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
