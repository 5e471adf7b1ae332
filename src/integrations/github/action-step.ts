import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { codeBlock, inlineCode } from './reply-text.js';

/**
 * The step of the GitHub Action (action.yml at the repository root): runs `berth exec --wait`
 * against `server-url` with `token`, or else `berth run` on the runner (which needs Docker), and
 * turns the result into the step's outputs (`status`, `final-message`, `diff-file`, `task-id`)
 * and a job summary.
 *
 * Threat model: the inputs come from a workflow file, often with text from an issue or a pull
 * request in them; action.yml passes them as variables (INPUT_*), never spliced into the shell
 * script, and they reach berth as arguments, never through a shell. The token goes to berth as
 * BERTH_TOKEN, not on its command line. The final message and the diff come from a sandbox: an
 * output value is written with a delimiter it does not contain (so it cannot add outputs), and
 * the summary keeps the message in a code block no line of it can close (reply-text.ts).
 */

export interface ActionInputs {
  prompt: string;
  promptFile: string;
  envFile: string;
  attempts: string;
  model: string;
  serverUrl: string;
  token: string;
  outputFile: string;
}

/** The task as both `berth exec --wait --json` and `berth run --json` print it. */
export interface ActionResult {
  id: string;
  status: string;
  attempts: Array<{
    id: string;
    status: string;
    message: string;
    diff: string;
    error: string | null;
    filesChanged?: number;
    verification?: { passed: boolean; command: string; exitCode: number } | null;
  }>;
}

export function inputsFromEnv(env: NodeJS.ProcessEnv): ActionInputs {
  const get = (name: string) => (env[`INPUT_${name}`] ?? '').trim();
  return {
    prompt: env.INPUT_PROMPT ?? '',
    promptFile: get('PROMPT_FILE'),
    envFile: get('ENV_FILE'),
    attempts: get('ATTEMPTS') || '1',
    model: get('MODEL'),
    serverUrl: get('SERVER_URL'),
    token: env.INPUT_TOKEN ?? '',
    outputFile: get('OUTPUT_FILE'),
  };
}

function inWorkspace(path: string, workspace: string): string {
  return isAbsolute(path) ? path : join(workspace, path);
}

/** The berth command line (without the binary) and its extra environment. */
export function berthCommand(
  inputs: ActionInputs,
  env: NodeJS.ProcessEnv,
): { args: string[]; env: Record<string, string> } {
  const workspace = env.GITHUB_WORKSPACE ?? process.cwd();
  let prompt = inputs.prompt;
  if (prompt.trim() === '' && inputs.promptFile !== '')
    prompt = readFileSync(inWorkspace(inputs.promptFile, workspace), 'utf8');
  if (prompt.trim() === '') throw new Error('give the prompt input, or prompt-file');
  if (!/^[1-9][0-9]?$/.test(inputs.attempts))
    throw new Error('attempts must be a whole number from 1 to 99');
  if (inputs.envFile === '') throw new Error('give env-file (the environment file)');
  const envFile = inWorkspace(inputs.envFile, workspace);
  const model = inputs.model !== '' ? ['--model', inputs.model] : [];
  if (inputs.serverUrl !== '') {
    if (inputs.token === '')
      throw new Error('server-url needs token (an API token of that server)');
    const parsed = parseYaml(readFileSync(envFile, 'utf8')) as { name?: unknown } | null;
    if (typeof parsed?.name !== 'string')
      throw new Error(`${inputs.envFile} has no name: the server's environment is named by it`);
    const branch = pullRequestBranch(env);
    return {
      args: [
        'exec',
        '--wait',
        '--json',
        '--env',
        parsed.name,
        '--url',
        inputs.serverUrl,
        '--attempts',
        inputs.attempts,
        ...model,
        ...(branch !== undefined ? ['--branch', branch] : []),
        '--',
        prompt,
      ],
      env: { BERTH_TOKEN: inputs.token },
    };
  }
  return {
    args: [
      'run',
      '--json',
      '--env-file',
      envFile,
      '--repo',
      workspace,
      '--attempts',
      inputs.attempts,
      ...model,
      '--',
      prompt,
    ],
    env: {},
  };
}

/** A pull request event of this repository (not a fork): its head branch, for the server's task. */
function pullRequestBranch(env: NodeJS.ProcessEnv): string | undefined {
  if (env.GITHUB_EVENT_PATH === undefined || !existsSync(env.GITHUB_EVENT_PATH)) return undefined;
  try {
    const event = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8')) as {
      pull_request?: {
        head?: { ref?: unknown; repo?: { full_name?: unknown } | null };
        base?: { repo?: { full_name?: unknown } };
      };
    };
    const pull = event.pull_request;
    if (pull === undefined) return undefined;
    const same = pull.head?.repo?.full_name === pull.base?.repo?.full_name;
    return same && typeof pull.head?.ref === 'string' ? pull.head.ref : undefined;
  } catch {
    return undefined;
  }
}

/** `berth run --json` wraps the task; `berth exec --json` is the task. */
export function readResult(stdout: string): ActionResult | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  const p = parsed as {
    id?: unknown;
    status?: unknown;
    task?: { id?: unknown; status?: unknown };
    attempts?: unknown;
  };
  const id = p.task?.id ?? p.id;
  const status = p.task?.status ?? p.status;
  if (typeof id !== 'string' || typeof status !== 'string' || !Array.isArray(p.attempts))
    return undefined;
  return { id, status, attempts: p.attempts as ActionResult['attempts'] };
}

/** An output line pair GitHub reads from GITHUB_OUTPUT, with a delimiter the value lacks. */
export function outputEntry(name: string, value: string): string {
  let delimiter = `ghadelimiter_${randomUUID()}`;
  while (value.includes(delimiter)) delimiter = `ghadelimiter_${randomUUID()}`;
  return `${name}<<${delimiter}\n${value}\n${delimiter}\n`;
}

export function summaryOf(result: ActionResult | undefined, error: string | undefined): string {
  if (result === undefined)
    return `## Berth\n\nNo task result: ${codeBlock(error ?? 'berth printed no result')}\n`;
  const chosen = pickAttempt(result);
  const lines = [`## Berth task ${inlineCode(result.id)}: ${result.status}`, ''];
  for (const a of result.attempts) {
    const verify = a.verification
      ? a.verification.passed
        ? 'verify passed'
        : `verify failed (exit ${a.verification.exitCode})`
      : 'no verify';
    lines.push(
      `- ${inlineCode(a.id)}: ${a.status}, ${a.filesChanged ?? 0} files changed, ${verify}${a.error ? `: ${inlineCode(a.error)}` : ''}`,
    );
  }
  if (chosen !== undefined && chosen.message.trim() !== '')
    lines.push('', "The agent's final message:", '', codeBlock(chosen.message));
  return `${lines.join('\n')}\n`;
}

/** The attempt the outputs describe: verified first, then any that succeeded, else the first. */
export function pickAttempt(result: ActionResult): ActionResult['attempts'][number] | undefined {
  const ok = result.attempts.filter((a) => a.status === 'succeeded');
  return ok.find((a) => a.verification?.passed === true) ?? ok[0] ?? result.attempts[0];
}

/** Runs the step; returns its exit code (berth's). */
export async function runActionStep(env: NodeJS.ProcessEnv): Promise<number> {
  const inputs = inputsFromEnv(env);
  const berth = join(env.GITHUB_ACTION_PATH ?? process.cwd(), 'bin', 'berth.js');
  let result: ActionResult | undefined;
  let error: string | undefined;
  let code = 1;
  try {
    const command = berthCommand(inputs, env);
    const ran = await new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [berth, ...command.args], {
        env: { ...env, ...command.env },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => (stdout += d));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c ?? 1, stdout }));
    });
    code = ran.code;
    result = readResult(ran.stdout);
    if (result === undefined) error = `berth exited ${ran.code} without a result`;
  } catch (e) {
    error = (e as Error).message;
    process.stderr.write(`berth action: ${error}\n`);
  }
  const temp = env.RUNNER_TEMP ?? env.GITHUB_WORKSPACE ?? process.cwd();
  const chosen = result ? pickAttempt(result) : undefined;
  const diffFile = join(temp, `berth-${result?.id ?? 'no-task'}.diff`);
  writeFileSync(diffFile, chosen?.diff ?? '');
  if (inputs.outputFile !== '' && result !== undefined)
    writeFileSync(
      inWorkspace(inputs.outputFile, env.GITHUB_WORKSPACE ?? process.cwd()),
      `${JSON.stringify(result, null, 2)}\n`,
    );
  const outputs = {
    status: result?.status ?? 'error',
    'task-id': result?.id ?? '',
    'diff-file': diffFile,
    'final-message': chosen?.message ?? '',
  };
  if (env.GITHUB_OUTPUT !== undefined)
    appendFileSync(
      env.GITHUB_OUTPUT,
      Object.entries(outputs)
        .map(([k, v]) => outputEntry(k, v))
        .join(''),
    );
  if (env.GITHUB_STEP_SUMMARY !== undefined)
    appendFileSync(env.GITHUB_STEP_SUMMARY, summaryOf(result, error));
  return result === undefined && code === 0 ? 1 : code;
}
