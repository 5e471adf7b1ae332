import type { ScriptSpec } from '../domain/environment/environment-spec.js';
import { BerthError } from '../errors/berth-error.js';
import { PhaseOutput } from './phase-output.js';
import type { SandboxContext } from './sandbox-context.js';
import { listProcesses, stopLeftoverProcesses } from './leftover-processes.js';
import { scanForSecrets } from './secret-scan.js';
import {
  EXPORTS_FILE,
  describeScriptFailure,
  exportedVariables,
  formatEnvZero,
  parseEnvZero,
  parseErrorRecords,
  scriptFiles,
  shellQuote,
  wrapScript,
  type ScriptPhase,
} from './setup-script.js';
import { readSandboxFile, writeSandboxFile } from './sandbox-files.js';

/** Sourced by every login shell after /etc/profile's own PATH, so replayed exports win. */
export const PROFILE_EXPORTS_FILE = '/etc/profile.d/zz-berth-exports.sh';

export interface ScriptRun {
  phase: ScriptPhase;
  spec: ScriptSpec;
  env: Readonly<Record<string, string>>;
  secrets: Readonly<Record<string, string>>;
  /** Variables exported by earlier scripts, replayed for this one. */
  exports: Readonly<Record<string, string>>;
}

export interface ScriptRunResult {
  /** All exports so far (earlier ones plus this script's). */
  exports: Record<string, string>;
  /** Names this script exported. */
  exported: string[];
  durationMs: number;
}

/** Writes the replayed exports into the sandbox (kept in the cache image). */
export async function writeExports(
  ctx: SandboxContext,
  exports: Readonly<Record<string, string>>,
): Promise<void> {
  const profile = [
    '# Variables exported by the environment setup and maintenance scripts (written by Berth).',
    ...Object.entries(exports).map(([name, value]) => `export ${name}=${shellQuote(value)}`),
    '',
  ].join('\n');
  await writeSandboxFile(ctx.runtime, ctx.sandboxId, EXPORTS_FILE, formatEnvZero(exports), {
    signal: ctx.signal,
  });
  await writeSandboxFile(ctx.runtime, ctx.sandboxId, PROFILE_EXPORTS_FILE, profile, {
    signal: ctx.signal,
  });
}

/** The exports recorded in the sandbox (kept in a cache image), empty when there are none. */
export async function readExports(ctx: SandboxContext): Promise<Record<string, string>> {
  const data = await readSandboxFile(ctx.runtime, ctx.sandboxId, EXPORTS_FILE, ctx.signal);
  return data === undefined ? {} : Object.fromEntries(parseEnvZero(data));
}

/**
 * Runs a setup or maintenance script (see setup-script.ts for the program) and what follows it:
 * the export capture, the secret scan, the removal of its side files. Throws a BerthError naming
 * the failing line, command and exit code, with the log tail, when it fails.
 */
export async function runLifecycleScript(
  ctx: SandboxContext,
  run: ScriptRun,
): Promise<ScriptRunResult> {
  const files = scriptFiles(run.phase);
  // What runs before the script is kept; everything it leaves running is stopped after it.
  const before = await listProcesses(ctx);
  const started = Date.now();
  const output = new PhaseOutput(ctx.masker, ctx.emit);
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    script: wrapScript({
      phase: run.phase,
      strict: run.spec.strict,
      workdir: ctx.workdir,
      scriptFromStdin: true,
    }),
    login: true,
    stdin: run.spec.script,
    env: { ...run.env, ...run.exports, ...run.secrets },
    workdir: ctx.workdir,
    timeoutMs: run.spec.timeoutMs,
    signal: ctx.signal,
    onOutput: output.onOutput,
    maxOutputBytes: 64 * 1024,
  });
  output.end();
  if (ctx.signal.aborted) throw ctx.signal.reason;

  const read = async (path: string) =>
    (await readSandboxFile(ctx.runtime, ctx.sandboxId, path, ctx.signal)) ?? Buffer.alloc(0);
  const [errors, envStart, envEnd] = await Promise.all([
    read(files.errorsPath),
    read(files.envStartPath),
    read(files.envEndPath),
  ]);
  const secretValues = Object.values(run.secrets);
  // Nothing the script started runs on (not even one that hid its environment); then the files.
  await stopLeftoverProcesses(ctx, before, run.phase);
  // The end snapshot holds secret values: the scan removes it with the other side files.
  await scanForSecrets(ctx, {
    since: started,
    secretValues,
    removeFiles: [files.errorsPath, files.envStartPath, files.envEndPath, files.scriptPath],
    phase: run.phase,
  });

  const failure = describeScriptFailure({
    phase: run.phase,
    exitCode: result.exitCode,
    timedOut: result.timedOut,
    timeoutMs: run.spec.timeoutMs,
    script: run.spec.script,
    scriptPath: files.scriptPath,
    records: parseErrorRecords(errors.toString('utf8')),
    ...(result.outOfMemory === true ? { outOfMemory: true } : {}),
  });
  if (failure !== undefined) {
    const logTail = output.tail();
    // A full disk shows in the output first; say so, so nobody hunts a bug in the script.
    const diskFull = /no space left on device/i.test(logTail);
    const message = diskFull
      ? `${failure.message} (the output says "No space left on device": a disk is full)`
      : failure.message;
    throw new BerthError('task_failed', ctx.masker.mask(message), {
      reason: run.phase,
      ...(diskFull ? { diskFull: true } : {}),
      exitCode: failure.exitCode,
      timedOut: failure.timedOut,
      ...(failure.line !== undefined ? { line: failure.line } : {}),
      ...(failure.lineText !== undefined ? { lineText: ctx.masker.mask(failure.lineText) } : {}),
      ...(failure.command !== undefined ? { command: ctx.masker.mask(failure.command) } : {}),
      logTail,
      // The output was in the attempt's log as it ran: the log shows the failure without it.
      logShown: true,
    });
  }

  const { exports, withheld } = exportedVariables(
    parseEnvZero(envStart),
    parseEnvZero(envEnd),
    secretValues,
  );
  if (withheld.length > 0) {
    ctx.emit({
      type: 'warning',
      message: `the ${run.phase} script exported ${withheld.join(', ')} with a secret value in it; not replayed for later commands`,
    });
  }
  const exported = Object.keys(exports).sort();
  const all = { ...run.exports, ...exports };
  if (exported.length > 0) {
    await writeExports(ctx, all);
    ctx.emit({
      type: 'log',
      stream: 'system',
      text: `${run.phase} script exported ${exported.join(', ')} (replayed for every later command)\n`,
    });
  }
  return { exports: all, exported, durationMs: Date.now() - started };
}
