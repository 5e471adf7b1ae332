/**
 * Nothing a setup or maintenance script started runs on into the agent phase (issue 21 item 8).
 *
 * Threat model. The script runs with the environment's secrets in its process environment; a
 * process it leaves behind (a daemon, a build server, a `nohup … &`) keeps them: in its
 * environment, or, with the environment cleared, in its memory, where any root process of the
 * agent phase reads it through `/proc/<pid>/mem`. Such a process may pretend to be anything: set
 * the secret scan's variables, rename itself (a name holding `) Z` and a newline fakes a zombie
 * to a parser of `/proc/<pid>/stat`'s first line), clear its environment, fork in a loop,
 * daemonise, let its main thread exit while other threads run on (its pid then shows state Z).
 *
 * Guarantee: after the script the sandbox is restarted through the runtime (stopped with no
 * grace period, then started): the kernel ends every process of its PID namespace, whatever it
 * pretends, and the sandbox's `/dev`, `/dev/shm` (tmpfs), POSIX message queues and SysV IPC
 * objects (its IPC namespace) start empty. Nothing of the script runs on; only files remain, for
 * the secret scan (secret-scan.ts). Services are started after this, without secrets.
 *
 * Before the restart, as defence in depth and for the log, an in-sandbox stop names and kills
 * what the script left: every process not in the list taken by a separate exec right before the
 * script (same pid, same start time; held by the orchestrator) and not the stopping command or
 * its ancestors is stopped (SIGSTOP, so a fork loop cannot outrun it) and killed, in rounds until
 * none is left. `/proc/<pid>/stat` is parsed whole, after its last `)`, and a process's state
 * never exempts it. That stop runs with the sandbox's own bash (a script may have replaced it),
 * so it is trusted for nothing but the names in the log; the restart is the guarantee.
 */
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { SandboxContext } from './sandbox-context.js';

// Only builtins inside the loops: a forked helper would itself be a new process to stop.
// `pid:starttime` for every process but this shell.
// The whole of /proc/<pid>/stat is read (a name may hold a newline) and split after its last
// ") " without a here-string (which may need a writable /tmp); globbing off for the split.
const LIST_SCRIPT = String.raw`
for d in /proc/[0-9]*; do
  pid=${'$'}{d#/proc/}
  [ "$pid" = "$$" ] && continue
  s=; IFS= read -r -d '' s 2>/dev/null < "$d/stat"
  [ -n "$s" ] || continue
  set -f; f=(${'$'}{s##*) }); set +f
  printf '%s:%s\n' "$pid" "${'$'}{f[19]}"
done
`;

// $1: the processes to keep (`pid:starttime`, space-separated). Prints `process:<pid> <argv0>`
// for each process stopped; exits 4 when processes still appear after the last round.
const STOP_SCRIPT = String.raw`
keep=" $1 "
mine=" "
p=$$
while [ -n "$p" ] && [ "$p" != 0 ]; do
  mine+="$p "
  s=; IFS= read -r -d '' s 2>/dev/null < "/proc/$p/stat"
  [ -n "$s" ] || break
  set -f; f=(${'$'}{s##*) }); set +f
  p=${'$'}{f[1]}
done
reported=" "
for (( round = 0, rounds = 0; round < 2000 && rounds < 50; round++ )); do
  found=()
  pending=0
  for d in /proc/[0-9]*; do
    pid=${'$'}{d#/proc/}
    case "$mine" in *" $pid "*) continue ;; esac
    s=; IFS= read -r -d '' s 2>/dev/null < "$d/stat"
    [ -n "$s" ] || continue
    set -f; f=(${'$'}{s##*) }); set +f
    # No state exempts a process: a real zombie is reaped by the sandbox's init once killed.
    key="$pid:${'$'}{f[19]}"
    case "$keep" in *" $key "*) continue ;; esac
    # Killed already and not gone yet: no new report, but not done either.
    case "$reported" in *" $key "*) kill -KILL "$pid" 2>/dev/null; pending=1; continue ;; esac
    kill -STOP "$pid" 2>/dev/null && found+=("$key")
  done
  if [ ${'$'}{#found[@]} -eq 0 ] && [ "$pending" = 0 ]; then
    ipcrm --all 2>/dev/null
    [ -d /dev/mqueue ] && rm -f /dev/mqueue/* /dev/mqueue/.[!.]* /dev/mqueue/..?* 2>/dev/null
    exit 0
  fi
  [ ${'$'}{#found[@]} -gt 0 ] && (( rounds++ ))
  for key in "${'$'}{found[@]}"; do
    pid=${'$'}{key%%:*}
    name=
    IFS= read -r -d '' name < "/proc/$pid/cmdline" 2>/dev/null
    printf 'process:%s %s\n' "$pid" "${'$'}{name:0:120}"
    kill -KILL "$pid" 2>/dev/null
    reported+="$key "
  done
done
exit 4
`;

/** The sandbox's processes right now, as `pid:starttime` (taken before a script starts). */
export async function listProcesses(ctx: SandboxContext): Promise<string[]> {
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    argv: ['bash', '-c', LIST_SCRIPT],
    user: 'root',
    timeoutMs: 30_000,
    signal: ctx.signal,
    maxOutputBytes: 256 * 1024,
  });
  if (result.exitCode !== 0)
    throw new BerthError('runtime_unavailable', 'could not list the sandbox processes', {
      exitCode: result.exitCode,
    });
  return result.stdout.split('\n').filter((line) => /^\d+:\d+$/.test(line));
}

/**
 * The in-sandbox stop alone (defence in depth, and the names for the log): kills every process
 * not in `keep`, in rounds. `complete` is false when it did not finish (an error, a time-out, or
 * processes still appearing after its last round). Trusted for nothing but the names: it runs
 * with the sandbox's own bash.
 */
export async function killLeftoverProcesses(
  ctx: SandboxContext,
  keep: readonly string[],
): Promise<{ stopped: string[]; complete: boolean }> {
  const result = await ctx.runtime
    .exec(ctx.sandboxId, {
      argv: ['bash', '-c', STOP_SCRIPT, 'berth-stop-leftovers', keep.join(' ')],
      user: 'root',
      timeoutMs: 60_000,
      signal: ctx.signal,
      maxOutputBytes: 256 * 1024,
    })
    .catch(() => undefined);
  const stopped = (result?.stdout ?? '')
    .split('\n')
    .filter((line) => line.startsWith('process:'))
    .map((line) => ctx.masker.mask(line.slice(8).trim()));
  return {
    stopped,
    complete: result !== undefined && result.exitCode === 0 && !result.timedOut,
  };
}

/**
 * Ends everything the script left running: names and kills its processes in the sandbox (for
 * the log, and as defence in depth), then restarts the sandbox through the runtime, which ends
 * every process whatever the in-sandbox stop managed, and empties `/dev/shm`, the message queues
 * and SysV IPC. The log names the processes found and says the sandbox was restarted. Fails the
 * attempt when the restart fails: the agent phase never starts beside one of them.
 */
export async function stopLeftoverProcesses(
  ctx: SandboxContext,
  keep: readonly string[],
  phase: string,
): Promise<string[]> {
  const { stopped, complete } = await killLeftoverProcesses(ctx, keep);
  ctx.signal.throwIfAborted();
  try {
    // No grace period: nothing of the script is owed a clean shutdown.
    await ctx.runtime.stop(ctx.sandboxId, 0);
    await ctx.runtime.start(ctx.sandboxId, ctx.signal);
  } catch (error) {
    ctx.signal.throwIfAborted();
    throw new BerthError(
      'task_failed',
      `the sandbox could not be restarted after the ${phase} script (${toBerthError(error).message}); the agent does not run beside what the script left`,
      { reason: phase, processes: stopped.slice(0, 50) },
    );
  }
  const incomplete = complete
    ? ''
    : ' (the stop inside the sandbox did not finish; the restart ended the rest)';
  if (stopped.length > 0 || incomplete !== '') {
    ctx.emit({
      type: 'warning',
      message: `stopped ${stopped.length} process(es) left running by the ${phase} script${stopped.length > 0 ? `: ${stopped.slice(0, 20).join('; ')}` : ''}${incomplete}; the sandbox was restarted, so none of them runs on (start long-running processes as services, which get no secrets)`,
      details: { processes: stopped },
    });
  } else {
    ctx.emit({
      type: 'log',
      stream: 'system',
      text: `found no process left running by the ${phase} script; the sandbox was restarted all the same, so nothing it started runs on\n`,
    });
  }
  return stopped;
}
