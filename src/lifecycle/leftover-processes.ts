/**
 * Nothing a setup or maintenance script started runs on into the agent phase (issue 21 item 8).
 *
 * Threat model. The script runs with the environment's secrets in its process environment; a
 * process it leaves behind (a daemon, a build server, a `nohup … &`) keeps them: in its
 * environment, or, with the environment cleared, in its memory, where any root process of the
 * agent phase reads it through `/proc/<pid>/mem`. Such a process may pretend to be anything: set
 * the secret scan's variables, rename itself, clear its environment, fork in a loop, daemonise.
 *
 * Trusted: the list of processes taken by a separate exec right before the script started, held
 * by the orchestrator (the script cannot change it), and the kernel's `/proc` (a process's start
 * time cannot be faked or reused by another process with the same pid).
 * Guarantee: after the script, every process of the sandbox that is not in that list (same pid,
 * same start time) and is not the stopping command itself or one of its ancestors (the exec
 * agent or the engine's exec) is stopped (SIGSTOP, so a fork loop cannot outrun it) and killed,
 * in rounds until a round finds none; the log names them. SysV IPC objects and POSIX message
 * queues (which outlive their process in the sandbox's IPC namespace) are removed. Services are
 * started after this, without secrets.
 * Limits (docs/lifecycle.md): the stopping runs with the sandbox's own bash, so a script that
 * replaced `/bin/bash` (it runs as root) can make it a no-op; a process that was running before
 * the script (the sandbox's own `sleep`) could be attached to with ptrace and made to hold a
 * value. Such a script has the secret and the internet anyway; the stop is against leftovers and
 * against the agent, not against a setup that exfiltrates.
 */
import { BerthError } from '../errors/berth-error.js';
import type { SandboxContext } from './sandbox-context.js';

// Only builtins inside the loops: a forked helper would itself be a new process to stop.
// `pid:starttime` for every process but this shell.
const LIST_SCRIPT = String.raw`
for d in /proc/[0-9]*; do
  pid=${'$'}{d#/proc/}
  [ "$pid" = "$$" ] && continue
  IFS= read -r s < "$d/stat" 2>/dev/null || continue
  read -ra f <<< "${'$'}{s##*) }"
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
  IFS= read -r s < "/proc/$p/stat" 2>/dev/null || break
  read -ra f <<< "${'$'}{s##*) }"
  p=${'$'}{f[1]}
done
reported=" "
for (( round = 0, rounds = 0; round < 2000 && rounds < 50; round++ )); do
  found=()
  pending=0
  for d in /proc/[0-9]*; do
    pid=${'$'}{d#/proc/}
    case "$mine" in *" $pid "*) continue ;; esac
    IFS= read -r s < "$d/stat" 2>/dev/null || continue
    read -ra f <<< "${'$'}{s##*) }"
    case "${'$'}{f[0]}" in Z|X|x) continue ;; esac
    key="$pid:${'$'}{f[19]}"
    case "$keep" in *" $key "*) continue ;; esac
    # Killed already and not gone yet: no new report, but not done either.
    case "$reported" in *" $key "*) kill -KILL "$pid" 2>/dev/null; pending=1; continue ;; esac
    kill -STOP "$pid" 2>/dev/null && found+=("$key")
  done
  if [ ${'$'}{#found[@]} -eq 0 ] && [ "$pending" = 0 ]; then
    ipcrm --all 2>/dev/null
    [ -d /dev/mqueue ] && rm -f /dev/mqueue/* 2>/dev/null
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
 * Stops every process the script left (not in `keep`); the log names them. Fails the attempt
 * when they cannot all be stopped: the agent phase never starts beside one of them.
 */
export async function stopLeftoverProcesses(
  ctx: SandboxContext,
  keep: readonly string[],
  phase: string,
): Promise<string[]> {
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    argv: ['bash', '-c', STOP_SCRIPT, 'berth-stop-leftovers', keep.join(' ')],
    user: 'root',
    timeoutMs: 60_000,
    signal: ctx.signal,
    maxOutputBytes: 256 * 1024,
  });
  const stopped = result.stdout
    .split('\n')
    .filter((line) => line.startsWith('process:'))
    .map((line) => ctx.masker.mask(line.slice(8).trim()));
  if (result.exitCode !== 0 || result.timedOut) {
    throw new BerthError(
      'task_failed',
      `the processes left by the ${phase} script could not all be stopped (exit ${result.exitCode}); the agent does not run beside them`,
      { reason: phase, processes: stopped.slice(0, 50) },
    );
  }
  if (stopped.length > 0) {
    ctx.emit({
      type: 'warning',
      message: `stopped ${stopped.length} process(es) left running by the ${phase} script (start long-running processes as services, which get no secrets): ${stopped.slice(0, 20).join('; ')}`,
      details: { processes: stopped },
    });
  }
  return stopped;
}
