/**
 * The bash program that runs a setup or maintenance script, and the parsing of what it leaves
 * behind. The user's script is written to a file and `source`d by a small wrapper, so line
 * numbers are the script's own. The wrapper:
 * - runs in a login shell (the caller starts it with `bash -l`), in the workspace;
 * - turns on `set -euo pipefail` unless the environment opts out (`strict: false`);
 * - keeps an ERR trap (inherited by functions: `set -E`) that appends the failing line number,
 *   exit code, file and command text (`$BASH_COMMAND`) to a side file;
 * - writes `env -0` at the start and, from an EXIT trap, at the end, so the orchestrator can tell
 *   which variables the script exported and replay them for every later command.
 *
 * Threat model: the script is the environment owner's code and runs with the secrets in its
 * process environment. The side files are written inside the sandbox and the end snapshot holds
 * secret values; the orchestrator reads it, removes the files and never stores a variable whose
 * value contains a secret (see `exportedVariables`). A script that replaces the traps loses the
 * failure detail and the export capture, nothing more.
 */

export type ScriptPhase = 'setup' | 'maintenance';

/** Where Berth keeps its own files inside a sandbox (outside the workspace, never in the diff). */
export const SANDBOX_STATE_DIR = '/var/lib/berth';

/** The file holding the variables exported so far (NUL-separated `NAME=value`), kept in the image. */
export const EXPORTS_FILE = `${SANDBOX_STATE_DIR}/exports.env0`;

export interface ScriptFiles {
  scriptPath: string;
  errorsPath: string;
  envStartPath: string;
  envEndPath: string;
}

export function scriptFiles(phase: ScriptPhase, stateDir = SANDBOX_STATE_DIR): ScriptFiles {
  return {
    scriptPath: `${stateDir}/${phase}.sh`,
    errorsPath: `${stateDir}/${phase}.err`,
    envStartPath: `${stateDir}/${phase}.env-start`,
    envEndPath: `${stateDir}/${phase}.env-end`,
  };
}

/** A word for bash: single-quoted, so nothing in it is expanded. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface WrapOptions {
  phase: ScriptPhase;
  strict: boolean;
  workdir: string;
  stateDir?: string;
  /** The user's script arrives on the wrapper's stdin (saves writing it separately). */
  scriptFromStdin?: boolean;
}

/** The wrapper program (run as `bash -l -c PROGRAM`); the user's script goes to `scriptPath`. */
export function wrapScript(options: WrapOptions): string {
  const files = scriptFiles(options.phase, options.stateDir);
  const q = shellQuote;
  return [
    `# Berth runs the ${options.phase} script (src/lifecycle/setup-script.ts).`,
    options.scriptFromStdin
      ? `mkdir -p -- ${q(options.stateDir ?? SANDBOX_STATE_DIR)} && cat > ${q(files.scriptPath)} && exec < /dev/null`
      : '',
    `: > ${q(files.errorsPath)}`,
    `env -0 > ${q(files.envStartPath)}`,
    `trap '__berth_rc=$?; printf "%s\\037%s\\037%s\\037%s\\036" "$LINENO" "$__berth_rc" "\${BASH_SOURCE[0]-}" "$BASH_COMMAND" >> ${q(files.errorsPath).replace(/'/g, `'\\''`)}' ERR`,
    `trap 'env -0 > ${q(files.envEndPath).replace(/'/g, `'\\''`)}' EXIT`,
    'set -E',
    options.strict ? 'set -euo pipefail' : '',
    `cd -- ${q(options.workdir)}`,
    `source -- ${q(files.scriptPath)}`,
    '',
  ]
    .filter((line, i, all) => line !== '' || i === all.length - 1)
    .join('\n');
}

/** One firing of the ERR trap. */
export interface ErrorRecord {
  line: number;
  exitCode: number;
  source: string;
  command: string;
}

export function parseErrorRecords(text: string): ErrorRecord[] {
  const out: ErrorRecord[] = [];
  for (const record of text.split('\x1e')) {
    if (record === '') continue;
    const [line, exitCode, source, ...command] = record.split('\x1f');
    const lineNumber = Number(line);
    const code = Number(exitCode);
    if (!Number.isInteger(lineNumber) || !Number.isInteger(code)) continue;
    out.push({
      line: lineNumber,
      exitCode: code,
      source: source ?? '',
      command: command.join('\x1f'),
    });
  }
  return out;
}

/** `env -0` output as a map (later duplicates win, like a shell would see them). */
export function parseEnvZero(data: Buffer | string): Map<string, string> {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  const out = new Map<string, string>();
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    out.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return out;
}

export function formatEnvZero(vars: Readonly<Record<string, string>>): string {
  return Object.entries(vars)
    .map(([name, value]) => `${name}=${value}\0`)
    .join('');
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables bash itself changes, or Berth owns: never replayed. */
const NOT_REPLAYED = /^(_|SHLVL|PWD|OLDPWD|SHELLOPTS|BASHOPTS|BASH_.*|BERTH_.*|__berth.*)$/;

export interface ExportedVariables {
  /** New or changed variables, to replay for every later command. */
  exports: Record<string, string>;
  /** Names left out because their value contains a secret value. */
  withheld: string[];
}

/**
 * The variables a script exported: those whose value at the end differs from the start (new or
 * changed). Variables removed by the script are not replayed. A variable whose value contains a
 * secret value is withheld, so a secret cannot reach the agent phase through a replayed export.
 */
export function exportedVariables(
  start: ReadonlyMap<string, string>,
  end: ReadonlyMap<string, string>,
  secretValues: readonly string[] = [],
): ExportedVariables {
  const exports: Record<string, string> = {};
  const withheld: string[] = [];
  const secrets = secretValues.filter((v) => v !== '');
  for (const [name, value] of end) {
    if (!VARIABLE_NAME.test(name) || NOT_REPLAYED.test(name)) continue;
    if (start.get(name) === value) continue;
    if (secrets.some((secret) => value.includes(secret))) {
      withheld.push(name);
      continue;
    }
    exports[name] = value;
  }
  return { exports, withheld: withheld.sort() };
}

export interface ScriptOutcome {
  phase: ScriptPhase;
  exitCode: number;
  timedOut: boolean;
  timeoutMs: number;
  script: string;
  scriptPath: string;
  records: readonly ErrorRecord[];
  /** The runtime saw the kernel kill a process of the sandbox for its memory limit. */
  outOfMemory?: boolean;
}

export interface ScriptFailure {
  message: string;
  exitCode: number;
  timedOut: boolean;
  line?: number;
  /** The text of the failing line in the user's script. */
  lineText?: string;
  /** The command bash was running (`$BASH_COMMAND`). */
  command?: string;
}

function duration(ms: number): string {
  if (ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

function shorten(text: string, max = 200): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/**
 * Why a script failed, in a sentence that names the line, the command and the exit code; undefined
 * when it succeeded. The last ERR record in the user's own file is the failing one (in strict mode
 * bash stops at it; without strict mode it is the last command that failed).
 */
export function describeScriptFailure(outcome: ScriptOutcome): ScriptFailure | undefined {
  const failure = describeScriptExit(outcome);
  // The kernel killed a process of it for the sandbox's memory limit: said, with the setting.
  if (failure !== undefined && outcome.outOfMemory === true)
    failure.message +=
      ": out of memory (the sandbox's memory limit is resources.memoryMb in the environment; raise it)";
  return failure;
}

function describeScriptExit(outcome: ScriptOutcome): ScriptFailure | undefined {
  if (outcome.timedOut) {
    return {
      message: `${outcome.phase} script timed out after ${duration(outcome.timeoutMs)}`,
      exitCode: outcome.exitCode,
      timedOut: true,
    };
  }
  if (outcome.exitCode === 0) return undefined;
  const own = outcome.records.filter((r) => r.source === outcome.scriptPath);
  const record = own[own.length - 1];
  if (record === undefined) {
    return {
      message: `${outcome.phase} script exited with code ${outcome.exitCode}`,
      exitCode: outcome.exitCode,
      timedOut: false,
    };
  }
  const lineText = outcome.script.split('\n')[record.line - 1];
  const failure: ScriptFailure = {
    message: `${outcome.phase} script failed at line ${record.line}: \`${shorten(record.command)}\` exited with code ${record.exitCode}`,
    exitCode: outcome.exitCode,
    timedOut: false,
    line: record.line,
    command: record.command,
  };
  if (lineText !== undefined) failure.lineText = lineText;
  return failure;
}
