/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests poke at JSON bodies */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  outputEntry,
  readResult,
  summaryOf,
} from '../../../src/integrations/github/action-step.js';
import { startTestServer, type TestServer } from '../../api/api-server.js';

/**
 * action.yml as a runner runs it: each step's `run` with bash, its `env` evaluated from the
 * inputs (`${{ inputs.NAME }}`, `${{ github.action_path }}`), and the variables a runner sets
 * (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH, GITHUB_WORKSPACE, RUNNER_TEMP); then
 * the action's outputs read the way GitHub reads them (`name<<DELIMITER` in GITHUB_OUTPUT,
 * mapped through `${{ steps.ID.outputs.NAME }}`). Against a real Berth server whose environment's
 * repository does not exist, so the task fails without Docker and every output is still set.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface ActionFile {
  inputs: Record<string, { default?: string }>;
  outputs: Record<string, { value: string }>;
  runs: {
    using: string;
    steps: Array<{
      id?: string;
      run?: string;
      shell?: string;
      env?: Record<string, string>;
      'working-directory'?: string;
    }>;
  };
}

/** GITHUB_OUTPUT's `name<<DELIM\nvalue\nDELIM` entries (and `name=value` lines). */
function readOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) value.push(lines[i] ?? '');
      out[heredoc[1] ?? ''] = value.join('\n');
    } else if (line.includes('='))
      out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  return out;
}

/** bash -e -c SCRIPT, without blocking this process (the Berth server runs in it). */
function bash(
  script: string,
  options: { cwd: string; env: Record<string, string | undefined> },
): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-e', '-c', script], {
      ...options,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, stderr }));
  });
}

async function runAction(
  inputs: Record<string, string>,
  runner: { workspace: string; temp: string; event: unknown; env?: Record<string, string> },
): Promise<{
  outputs: Record<string, string>;
  summary: string;
  exitCodes: number[];
  stderr: string;
}> {
  const action = parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as ActionFile;
  expect(action.runs.using).toBe('composite');
  const given = Object.fromEntries(
    Object.entries(action.inputs).map(([k, v]) => [k, inputs[k] ?? v.default ?? '']),
  );
  const evaluate = (text: string) =>
    text
      .replace(/\$\{\{\s*inputs\.([a-z-]+)\s*\}\}/g, (_, name: string) => given[name] ?? '')
      .replace(/\$\{\{\s*github\.action_path\s*\}\}/g, ROOT);
  const outputFile = join(runner.temp, 'output');
  const summaryFile = join(runner.temp, 'summary');
  const eventFile = join(runner.temp, 'event.json');
  writeFileSync(outputFile, '');
  writeFileSync(summaryFile, '');
  writeFileSync(eventFile, JSON.stringify(runner.event));
  const stepOutputs: Record<string, Record<string, string>> = {};
  const exitCodes: number[] = [];
  let stderr = '';
  for (const step of action.runs.steps) {
    expect(step.shell).toBe('bash');
    // A step's script never carries an input: only its env does.
    expect(step.run).not.toMatch(/\$\{\{\s*inputs\./);
    writeFileSync(outputFile, '');
    const ran = await bash(evaluate(step.run ?? ''), {
      cwd: step['working-directory'] ? evaluate(step['working-directory']) : runner.workspace,
      env: {
        PATH: process.env.PATH,
        HOME: runner.temp,
        CI: 'true',
        GITHUB_ACTIONS: 'true',
        GITHUB_WORKSPACE: runner.workspace,
        GITHUB_EVENT_PATH: eventFile,
        GITHUB_EVENT_NAME: 'pull_request',
        GITHUB_OUTPUT: outputFile,
        GITHUB_STEP_SUMMARY: summaryFile,
        RUNNER_TEMP: runner.temp,
        ...(runner.env ?? {}),
        ...Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, evaluate(v)])),
      },
    });
    exitCodes.push(ran.status);
    stderr += ran.stderr;
    if (step.id !== undefined) stepOutputs[step.id] = readOutputs(readFileSync(outputFile, 'utf8'));
  }
  const outputs = Object.fromEntries(
    Object.entries(action.outputs).map(([name, o]) => {
      const ref = /^\$\{\{\s*steps\.([a-z-]+)\.outputs\.([a-z-]+)\s*\}\}$/.exec(o.value);
      return [name, ref ? (stepOutputs[ref[1] ?? '']?.[ref[2] ?? ''] ?? '') : ''];
    }),
  );
  return { outputs, summary: readFileSync(summaryFile, 'utf8'), exitCodes, stderr };
}

describe('the GitHub Action (action.yml)', () => {
  let server: TestServer;
  let workspace: string;
  let temp: string;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer({
      allowLocalRepositories: true,
      // A model is configured so a prompt is taken; the attempt fails at the checkout first.
      env: {
        BERTH_MODEL_BASE_URL: 'http://127.0.0.1:9/v1',
        BERTH_MODEL: 'm',
        BERTH_MODEL_API_KEY: 'k',
      },
    });
    token = await server.createToken('ci-runner');
    const made = await server.request('POST', '/v1/environments', {
      body: {
        spec: {
          name: 'ci',
          repository: '/nonexistent/berth-action/app.git',
          members: ['ci-runner'],
        },
      },
    });
    expect(made.status, made.text).toBe(201);
    workspace = mkdtempSync(join(tmpdir(), 'berth-action-ws-'));
    temp = mkdtempSync(join(tmpdir(), 'berth-action-tmp-'));
    mkdirSync(join(workspace, '.berth'));
    writeFileSync(
      join(workspace, '.berth', 'environment.yml'),
      'name: ci\nrepository: /nonexistent/berth-action/app.git\n',
    );
    writeFileSync(join(workspace, 'task.md'), 'Fix the adder\n$(touch pwned) `touch pwned2`\n');
    execFileSync('git', ['init', '-q', workspace]);
  });
  afterAll(async () => {
    await server.close();
    rmSync(workspace, { recursive: true, force: true });
    rmSync(temp, { recursive: true, force: true });
  });

  it('runs berth exec --wait against the server and sets every output and the summary', async () => {
    const result = await runAction(
      {
        'prompt-file': 'task.md',
        'server-url': server.url,
        token,
        attempts: '2',
        'output-file': 'berth-result.json',
      },
      {
        workspace,
        temp,
        event: {
          pull_request: {
            number: 5,
            head: { ref: 'feature-x', repo: { full_name: 'acme/app' } },
            base: { ref: 'main', repo: { full_name: 'acme/app' } },
            labels: [{ name: 'berth' }],
          },
        },
      },
    );
    expect(result.exitCodes[0], result.stderr).toBe(0);
    expect(result.outputs.status, result.stderr).not.toBe('error');
    // The task failed (no such repository): berth's exit code fails the step, outputs still set.
    expect(result.exitCodes[1]).not.toBe(0);
    expect(result.outputs.status).toBe('failed');
    expect(result.outputs['task-id']).toMatch(/^task_/);
    expect(result.outputs['final-message']).toBe('');
    expect(readFileSync(result.outputs['diff-file'] ?? '', 'utf8')).toBe('');
    const task = await server.request('GET', `/v1/tasks/${result.outputs['task-id'] ?? ''}`);
    expect(task.json.attempts).toHaveLength(2);
    // The pull request's own branch, the prompt file's text as it is (no shell ran it).
    expect(task.json.branch).toBe('feature-x');
    expect(task.json.prompt).toBe('Fix the adder\n$(touch pwned) `touch pwned2`\n');
    expect(task.json.createdBy).toBe('ci-runner');
    expect(result.summary).toContain(
      `## Berth task \`${result.outputs['task-id'] ?? ''}\`: failed`,
    );
    const saved = JSON.parse(readFileSync(join(workspace, 'berth-result.json'), 'utf8')) as {
      id: string;
    };
    expect(saved.id).toBe(result.outputs['task-id']);
    expect(result.stderr).not.toContain(token);
    for (const name of ['pwned', 'pwned2'])
      expect(() => readFileSync(join(workspace, name))).toThrow();
  });

  it('a missing prompt: no task, status error, the summary says why', async () => {
    const result = await runAction(
      { 'server-url': server.url, token: 'x' },
      { workspace, temp, event: {} },
    );
    expect(result.exitCodes[1]).toBe(1);
    expect(result.outputs.status).toBe('error');
    expect(result.outputs['task-id']).toBe('');
    expect(result.summary).toContain('give the prompt input, or prompt-file');
  });
});

describe('action outputs and summary from hostile results', () => {
  it('a final message holding a delimiter-like line cannot add outputs', () => {
    const message = 'done\nghadelimiter_x\nstatus<<EOF\nsucceeded\nEOF\ntask-id=evil';
    const text = outputEntry('final-message', message) + outputEntry('status', 'failed');
    const outputs = readOutputs(text);
    expect(outputs['final-message']).toBe(message);
    expect(outputs.status).toBe('failed');
    expect(Object.keys(outputs)).toEqual(['final-message', 'status']);
  });

  it('berth run --json and exec --json read alike; the summary keeps the message in a block', () => {
    const attempts = [
      { id: 'att_1', status: 'failed', message: '', diff: '', error: 'boom' },
      {
        id: 'att_2',
        status: 'succeeded',
        message: '```\n@octocat <img src=x>',
        diff: 'd',
        error: null,
      },
    ];
    const run = readResult(JSON.stringify({ task: { id: 'task_1', status: 'failed' }, attempts }));
    const exec = readResult(JSON.stringify({ id: 'task_1', status: 'failed', attempts }));
    expect(run).toEqual(exec);
    const summary = summaryOf(run, undefined);
    const fence = /\n(`{4,})text\n/.exec(summary)?.[1];
    expect(fence).toBeDefined();
    expect(summary).toContain('@octocat <img src=x>');
    expect(summary.split(fence!)[0]).not.toContain('@octocat');
  });
});
