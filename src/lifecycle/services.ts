import type { ServiceSpec } from '../domain/environment/environment-spec.js';
import { BerthError } from '../errors/berth-error.js';
import type { SandboxContext } from './sandbox-context.js';
import { SANDBOX_STATE_DIR } from './setup-script.js';

/**
 * Services (DESIGN §3): long-running processes started after setup or maintenance and before the
 * agent, on every container start, each in the background (its own session, output to a log
 * file) and waited for by its readiness check. They get the environment's variables and the
 * replayed exports, never the secrets (they live on into the agent phase).
 */

export const SERVICE_LOG_DIR = `${SANDBOX_STATE_DIR}/services`;

// $1 log dir, $2 name, $3 command. The command is an argument, never part of this program.
const START_SCRIPT = String.raw`
mkdir -p -- "$1"
setsid nohup bash -l -c "$3" > "$1/$2.log" 2>&1 < /dev/null &
echo $!
`;

// $1 pid, $2 time limit in ms, $3 "command" | "port" | "none", $4 the check.
const READY_SCRIPT = String.raw`
pid=$1; limit_ms=$2; mode=$3; check=$4
start=$(date +%s%N)
while :; do
  case "$mode" in
    command) bash -l -c "$check" > /dev/null 2>&1 && exit 0 ;;
    port) (exec 3<>"/dev/tcp/127.0.0.1/$check") 2> /dev/null && exit 0 ;;
    none) sleep 0.2; kill -0 "$pid" 2> /dev/null && exit 0 ;;
  esac
  kill -0 "$pid" 2> /dev/null || exit 3
  now=$(date +%s%N)
  [ $(( (now - start) / 1000000 )) -ge "$limit_ms" ] && exit 4
  sleep 0.1
done
`;

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

export async function startServices(
  ctx: SandboxContext,
  services: readonly ServiceSpec[],
  env: Readonly<Record<string, string>>,
): Promise<void> {
  for (const service of services) {
    const started = await ctx.runtime.exec(ctx.sandboxId, {
      argv: [
        'bash',
        '-c',
        START_SCRIPT,
        'berth-service',
        SERVICE_LOG_DIR,
        service.name,
        service.command,
      ],
      env: { ...env },
      workdir: ctx.workdir,
      timeoutMs: 30_000,
      signal: ctx.signal,
    });
    const pid = started.stdout.trim();
    if (started.exitCode !== 0 || !/^\d+$/.test(pid)) {
      throw new BerthError(
        'task_failed',
        `service "${service.name}" could not be started: ${ctx.masker.mask(started.output.trim())}`,
        {
          reason: 'services',
          service: service.name,
        },
      );
    }
    const [mode, check] =
      service.ready === undefined
        ? ['none', '']
        : 'port' in service.ready
          ? ['port', String(service.ready.port)]
          : ['command', service.ready.command];
    const ready = await ctx.runtime.exec(ctx.sandboxId, {
      argv: [
        'bash',
        '-c',
        READY_SCRIPT,
        'berth-ready',
        pid,
        String(service.timeoutMs),
        mode,
        check,
      ],
      env: { ...env },
      workdir: ctx.workdir,
      timeoutMs: service.timeoutMs + 10_000,
      signal: ctx.signal,
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (ready.exitCode === 0) {
      ctx.emit({ type: 'log', stream: 'system', text: `service ${service.name} is ready\n` });
      continue;
    }
    const log = await ctx.runtime.exec(ctx.sandboxId, {
      argv: ['tail', '-n', '40', '--', `${SERVICE_LOG_DIR}/${service.name}.log`],
      signal: ctx.signal,
    });
    const logTail = ctx.masker.mask(log.stdout.trimEnd());
    const why =
      ready.exitCode === 3
        ? 'exited before it was ready'
        : `did not become ready within ${seconds(service.timeoutMs)}`;
    throw new BerthError('task_failed', `service "${service.name}" ${why}`, {
      reason: 'services',
      service: service.name,
      logTail,
    });
  }
}
