import type { SandboxContext } from './sandbox-context.js';
import { SANDBOX_STATE_DIR } from './setup-script.js';

/**
 * Secret hygiene after a setup or maintenance script (DESIGN §3): secrets were only in the
 * script's process environment, but the script may have written one down (a token in `.npmrc`,
 * a credential in `.git/config`) or left a background process holding them in its environment.
 *
 * Threat model: the script is trusted to use secrets, not to keep them out of files. This scan
 * looks at the files the script changed (newer than a marker made when it started) under the
 * places tools write configuration (home directories, /etc, /opt, /srv, /usr/local, temporary
 * directories, the workspace; not inside node_modules or .git/objects, which hold installed or
 * compressed content and would make the scan slow) and warns with their paths; it does not
 * remove what it finds (the owner must fix the script). Processes whose environment holds a secret value are stopped, so
 * no secret survives into the agent phase through /proc. It finds verbatim values (each line of
 * a multi-line value); a value the script transformed (encoded, split) is not found.
 */

const MIN_LENGTH = 4;

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

// Positional arguments: $1 marker file, $2 workspace, then files to remove at the end. The
// patterns arrive as BERTH_SCAN_* variables of this exec only, never on a command line.
const SCAN_SCRIPT = String.raw`
marker=$1; workspace=$2; shift 2
patterns() { local n; for n in ${'$'}{!BERTH_SCAN_@}; do printf '%s\n' "${'$'}{!n}"; done; }
if [ -n "${'$'}{BERTH_SCAN_0-}" ] && [ -e "$marker" ]; then
  roots=()
  for d in /root /home /etc /opt /srv /usr/local /tmp /var/tmp "$workspace"; do
    [ -d "$d" ] && roots+=("$d")
  done
  find "${'$'}{roots[@]}" -xdev \( -path '*/node_modules' -o -path '*/.git/objects' -o -path '${SANDBOX_STATE_DIR}' \) -prune \
    -o -type f -newer "$marker" -size -4M -print0 2>/dev/null \
    | xargs -0 -r grep -lsF -f <(patterns) -- 2>/dev/null | sed 's/^/file:/'
  for p in /proc/[0-9]*; do
    pid=${'$'}{p#/proc/}
    [ "$pid" = "$$" ] && continue
    grep -qsaF 'BERTH_SCAN_0=' "$p/environ" && continue
    if grep -qsaF -f <(patterns) "$p/environ"; then
      printf 'process:%s %s\n' "$pid" "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | head -c 120)"
      kill -KILL "$pid" 2>/dev/null
    fi
  done
fi
rm -f -- "$@"
true
`;

export interface SecretScanResult {
  files: string[];
  processes: string[];
}

/**
 * Scans after a script; `marker` is a file created when the script started. Also removes
 * `removeFiles` (the script's side files, which hold secret values) in the same exec.
 */
export async function scanForSecrets(
  ctx: SandboxContext,
  options: {
    marker: string;
    secretValues: readonly string[];
    removeFiles: readonly string[];
    phase: string;
  },
): Promise<SecretScanResult> {
  const patterns = scanPatterns(options.secretValues);
  const env: Record<string, string> = {};
  patterns.forEach((pattern, i) => {
    env[`BERTH_SCAN_${i}`] = pattern;
  });
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    argv: [
      'bash',
      '-c',
      SCAN_SCRIPT,
      'berth-secret-scan',
      options.marker,
      ctx.workdir,
      ...options.removeFiles,
    ],
    env,
    timeoutMs: 120_000,
    signal: ctx.signal,
    maxOutputBytes: 256 * 1024,
  });
  if (result.timedOut) {
    ctx.emit({
      type: 'warning',
      message: `the secret scan after the ${options.phase} script did not finish in time; files it did not reach were not checked`,
    });
  }
  const files = new Set<string>();
  const processes: string[] = [];
  for (const line of result.stdout.split('\n')) {
    if (line.startsWith('file:')) files.add(ctx.masker.mask(line.slice(5)));
    else if (line.startsWith('process:')) processes.push(ctx.masker.mask(line.slice(8).trim()));
  }
  const found = { files: [...files].sort(), processes };
  if (found.files.length > 0) {
    ctx.emit({
      type: 'warning',
      message: `the ${options.phase} script wrote a secret value into ${found.files.length} file(s): ${found.files.join(', ')}; they are part of the cache and visible to the agent`,
      details: { files: found.files },
    });
  }
  if (found.processes.length > 0) {
    ctx.emit({
      type: 'warning',
      message: `stopped ${found.processes.length} process(es) left by the ${options.phase} script with secrets in their environment (start long-running processes as services): ${found.processes.join('; ')}`,
      details: { processes: found.processes },
    });
  }
  return found;
}
