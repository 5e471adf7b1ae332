import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { BerthError } from '../../../errors/berth-error.js';
import type { ExecOptions, ExecResult } from '../../../ports/sandbox-runtime.js';
import { ExecCollector, commandOf } from './exec-collector.js';
import { FrameParser } from './frame-parser.js';

const KILL_GRACE_MS = 5_000;

/**
 * Runs the command under `sh` so a missing binary ends with 127 and a message (not an engine
 * error), with BERTH_EXEC_ID in its environment so the whole tree can be found and killed.
 */
const WRAPPER = 'exec "$@"';

/**
 * Kills every process carrying the marker, in rounds (STOP then KILL) so a fork loop cannot outrun
 * it. With perl it runs as one process and needs no fork, so it works in a sandbox whose process
 * limit a fork bomb has exhausted; plain sh + /proc otherwise.
 */
const KILLER = `if command -v perl >/dev/null 2>&1; then exec perl -e '
  my $needle = "\\0BERTH_EXEC_ID=$ARGV[0]\\0";
  for my $round (1 .. 8) {
    opendir(my $d, "/proc") or last; my @victims;
    for my $p (readdir $d) {
      next unless $p =~ /^\\d+$/ && $p != $$;
      open(my $fh, "<", "/proc/$p/environ") or next; local $/; my $env = <$fh>; close $fh;
      push @victims, $p if defined $env && index("\\0$env", $needle) >= 0;
    }
    last unless @victims; kill "STOP", @victims; kill "KILL", @victims;
    select(undef, undef, undef, 0.01);
  }' "$1"; fi
m="BERTH_EXEC_ID=$1"
i=0
while [ $i -lt 8 ]; do
  i=$((i+1)); found=
  for d in /proc/[0-9]*; do
    p=\${d#/proc/}
    [ "$p" = "$$" ] && continue
    if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qx "$m"; then
      kill -STOP "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null && found=1
    fi
  done
  [ -z "$found" ] && break
done`;

/**
 * The plain Engine-API exec path (exec create, start with the stream attached, inspect): the
 * fallback when the exec agent cannot run in a sandbox.
 */
export async function engineExec(
  container: Docker.Container,
  options: ExecOptions,
  sandboxGone: (waitMs: number) => Promise<BerthError | undefined>,
): Promise<ExecResult> {
  const argv = commandOf(options);
  const marker = randomBytes(8).toString('hex');
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  env.push(`BERTH_EXEC_ID=${marker}`);
  const { signal } = options;
  if (signal?.aborted) throw cancelled();
  const exec = await container.exec({
    Cmd: ['sh', '-c', WRAPPER, 'sh', ...argv],
    Env: env,
    ...(options.workdir !== undefined ? { WorkingDir: options.workdir } : {}),
    ...(options.user !== undefined ? { User: options.user } : {}),
    AttachStdin: options.stdin !== undefined,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
  });
  const collector = new ExecCollector(options);
  const stream = await exec.start({ hijack: true, stdin: options.stdin !== undefined });
  let violation: string | undefined;
  const parser = new FrameParser(
    'docker',
    (frame) => {
      if (frame.type === 1) collector.push('stdout', frame.payload);
      else if (frame.type === 2) collector.push('stderr', frame.payload);
    },
    (reason) => {
      violation = reason;
      stop();
    },
  );
  stream.on('data', (chunk: Buffer) => parser.push(chunk));

  let timedOut = false;
  let aborted = false;
  const killTree = async (): Promise<void> => {
    try {
      const killer = await container.exec({ Cmd: ['sh', '-c', KILLER, 'sh', marker], User: '0:0' });
      await killer.start({ Detach: true });
    } catch {
      // The sandbox may be gone already; the stream's end reports it.
    }
  };
  let graceTimer: NodeJS.Timeout | undefined;
  const streamEnded = new Promise<void>((resolve) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', () => resolve());
  });
  const stop = (): void => {
    void killTree();
    graceTimer ??= setTimeout(() => stream.destroy(), KILL_GRACE_MS);
  };
  const timeoutTimer =
    options.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          stop();
        }, options.timeoutMs)
      : undefined;
  const onAbort = (): void => {
    aborted = true;
    stop();
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  if (options.stdin !== undefined) stream.end(options.stdin);
  try {
    await streamEnded;
  } finally {
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    signal?.removeEventListener('abort', onAbort);
  }
  if (aborted) throw cancelled();
  if (violation !== undefined) {
    throw new BerthError(
      'task_failed',
      `the engine's exec stream broke its framing: ${violation}`,
      {
        reason: 'exec_channel',
      },
    );
  }
  let exitCode: number | null;
  try {
    const info = await exec.inspect();
    exitCode = info.Running ? null : info.ExitCode;
  } catch {
    exitCode = null;
  }
  if (exitCode === null || exitCode >= 128) {
    // Killed by a signal or no exit code: tell a dead sandbox apart from a killed command.
    const gone = await sandboxGone(timedOut ? 0 : 1000);
    if (gone) throw gone;
  }
  if (exitCode === null) exitCode = timedOut ? 137 : -1;
  return collector.result(exitCode, timedOut);
}

function cancelled(): BerthError {
  return new BerthError('cancelled', 'the command was cancelled; its process tree was killed');
}
