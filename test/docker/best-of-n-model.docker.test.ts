import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliResult } from '../support/cli.js';
import type { FakeGitHub } from '../support/fake-github.js';
import {
  FakeModelServer,
  lastToolResult,
  type FakeReply,
  type FakeRequest,
  type FakeWireMessage,
} from '../support/fake-model-server.js';
import { makeBuggyAdderRepository } from '../support/buggy-adder-repository.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { runGit } from '../support/run-git.js';
import {
  startBestOfNWorld,
  type AttemptJson,
  type BestOfNWorld,
  type TaskJson,
} from './best-of-n-support.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * Issue 7's Show, end to end with the model agent: `berth serve`, the CLI, the real Docker engine
 * and a scripted model (a real Chat Completions server on loopback). The sample repository's
 * adder subtracts; `berth exec --attempts 3` runs three conversations at once and the model
 * gives each a different answer (`$1 + $2`, `$2 + $1`, `$1 * $2`, in the order the conversations
 * start): three diffs from one setup run, the environment's `verify` (`sh test.sh`) passing for
 * two and failing for the third. The second answer is picked and followed up (the model
 * documents add()); `apply` puts the whole change into a fresh clone; `pr --draft` pushes
 * berth/<task-id> to a local bare remote and opens a draft PR on a fake GitHub Enterprise API
 * served under /api/v3 (a real HTTP server checking the requests as GitHub documents them).
 */

const INSTANCE = `bonmodel-${process.pid}`;
const API_KEY = 'sk-best-of-n-model-3391';
const TOKEN = 'ghs-bon-model-token';
const PROMPT = 'The tests fail. Fix the bug.';
const FOLLOW_UP = 'Document add() with a usage line.';
const BUGGY = 'add() { echo $(( $1 - $2 )); }';

/** The three answers, in the order the attempts' conversations reach the model. */
const FIXES = [
  { name: 'plus', line: 'add() { echo $(( $1 + $2 )); }', passes: true },
  { name: 'swapped', line: 'add() { echo $(( $2 + $1 )); }', passes: true },
  { name: 'times', line: 'add() { echo $(( $1 * $2 )); }', passes: false },
] as const;
const USAGE = '# usage: add A B prints A + B';

const patch = (...lines: string[]) =>
  ['*** Begin Patch', '*** Update File: src/add.sh', '@@', ...lines, '*** End Patch'].join('\n');

/** The assistant's apply_patch input of a message, if it made that call. */
function patchInput(message: FakeWireMessage): string | undefined {
  const call = message.tool_calls?.find((c) => c.function.name === 'apply_patch');
  return call ? (JSON.parse(call.function.arguments) as { input: string }).input : undefined;
}

/**
 * The scripted model, for any number of conversations at once. A request whose last request
 * (PROMPT or FOLLOW_UP) has no tool result after it gets a patch: the next of FIXES, or the usage
 * line for the follow-up. Once the patch's result is in, it answers naming what it did (or gives
 * up when the patch did not apply, which fails the test).
 */
let started = 0;
function scripted(request: FakeRequest): FakeReply {
  const messages = request.body.messages;
  const asked = messages.findLastIndex(
    (m) => m.role === 'user' && (m.content === PROMPT || m.content === FOLLOW_UP),
  );
  const since = messages.slice(asked + 1);
  const followUp = messages[asked]?.content === FOLLOW_UP;
  if (!since.some((m) => m.role === 'tool')) {
    if (followUp)
      return {
        toolCalls: [
          {
            name: 'apply_patch',
            arguments: { input: patch(' # add two numbers', `+${USAGE}`) },
          },
        ],
      };
    const fix = FIXES[started++];
    if (!fix) return { content: 'UNEXPECTED: a fourth conversation' };
    return {
      toolCalls: [
        {
          name: 'apply_patch',
          arguments: { input: patch(' # add two numbers', `-${BUGGY}`, `+${fix.line}`) },
        },
      ],
    };
  }
  const result = lastToolResult(request);
  if (!result.includes('src/add.sh')) return { content: `UNEXPECTED tool result: ${result}` };
  if (followUp) return { content: 'Documented add() with a usage line.' };
  const sent = since.map(patchInput).find((p) => p !== undefined) ?? '';
  const fix = FIXES.find((f) => sent.includes(f.line));
  return { content: `Made add() compute ${fix?.name ?? 'UNKNOWN'}.` };
}

let model: FakeModelServer;
let world: BestOfNWorld;
let github: FakeGitHub;
let bare: string;

function berth(...args: string[]): Promise<CliResult> {
  return world.berth(...args);
}

function json<T>(r: CliResult): T {
  if (!r.stdout.includes('"id"')) throw new Error(`${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

beforeAll(async () => {
  const image = lifecycleTestImage();
  const repo = makeBuggyAdderRepository('bon-model');
  model = await FakeModelServer.start([]);
  world = await startBestOfNWorld({
    prefix: 'bon-model',
    repository: repo,
    slug: 'acme/adder',
    token: TOKEN,
    basePath: '/api/v3',
    serveArgs: ['--model-base-url', model.baseUrl, '--model', 'fake-coder'],
    serveEnv: { BERTH_MODEL_API_KEY: API_KEY, BERTH_INSTANCE: INSTANCE },
  });
  ({ github, bare } = world);
  await world.createEnv(
    'bon-model',
    'adder.yaml',
    `name: adder\nrepository: ${bare}\nimage: ${image}\nsetup: echo "setup ran"\nverify: sh test.sh\n`,
  );
}, 180_000);

afterAll(async () => {
  await world?.stop();
  await model?.close();
  removeInstanceImages(INSTANCE);
});

describe('best-of-3 with a scripted model: verify, pick, follow-up, apply, draft PR (docker)', () => {
  let task: TaskJson;
  /** FIXES[i]'s attempt. */
  let byFix: AttemptJson[];
  /** The follow-up turn on the pick (the pick afterwards). */
  let followUp: string;

  it('runs three conversations from one setup: three diffs, each verified', async () => {
    // Six requests: each conversation asks for its patch, then answers.
    for (let i = 0; i < 6; i++) model.push(scripted);
    task = json<TaskJson>(
      await berth('exec', '--env', 'adder', '--attempts', '3', '--wait', '--json', PROMPT),
    );
    expect(task.attempts).toHaveLength(3);
    expect(task.attempts.map((a) => a.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(model.remainingTurns).toBe(0);
    expect(task.picked).toBeNull();

    // Three different diffs, each the answer its own conversation was given.
    expect(new Set(task.attempts.map((a) => a.diff)).size).toBe(3);
    byFix = FIXES.map((fix) => {
      const attempt = task.attempts.find((a) => a.diff.includes(`+${fix.line}`));
      expect(attempt, fix.name).toBeDefined();
      expect(attempt?.message).toBe(`Made add() compute ${fix.name}.`);
      expect(attempt?.diff).toContain(`-${BUGGY}`);
      return attempt!;
    });

    // The environment's verify, run by Berth in each sandbox: `$1 * $2` gives 6, not 5.
    FIXES.forEach((fix, i) => {
      const v = byFix[i]!.verification;
      expect(v).toMatchObject({ command: 'sh test.sh', passed: fix.passes });
      expect(v?.output).toContain(fix.passes ? 'tests passed' : 'FAIL: add 2 3 gave 6');
      expect(byFix[i]!.tokens).toBeGreaterThan(0);
    });

    // One setup run for the three attempts.
    expect(await world.setupRuns(task)).toBe(1);

    const show = await berth('task', 'show', task.id);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/VERIFY\s+TIME\s+TOKENS/);
    expect(show.stdout.match(/\bpassed\b/g)).toHaveLength(2);
    expect(show.stdout).toMatch(new RegExp(`${byFix[2]!.id}.*failed \\(1\\)`));
    expect(show.stdout).toContain(`none picked yet: berth task pick ${task.id} ATTEMPT`);
  });

  it('picks the second answer and follows it up in its own conversation', async () => {
    const chosen = byFix[1]!;
    const pick = await berth('task', 'pick', task.id, chosen.id);
    expect(pick.code, pick.stderr).toBe(0);

    const before = model.requests.length;
    model.push(scripted, scripted);
    const after = json<TaskJson & { attempt: string }>(
      await berth('task', 'followup', task.id, FOLLOW_UP, '--wait', '--json'),
    );
    const turn = after.attempts.find((a) => a.id === after.attempt);
    expect(turn).toMatchObject({
      status: 'succeeded',
      followUpOf: chosen.id,
      message: 'Documented add() with a usage line.',
    });
    expect(after.picked).toBe(turn?.id);
    followUp = after.attempt;
    // The model resumed the picked conversation: its patch, not the others'.
    const sent = model.requests[before]!.body.messages.map((m) => patchInput(m) ?? '').join('\n');
    expect(sent).toContain(FIXES[1].line);
    expect(sent).not.toContain(FIXES[0].line);
    expect(sent).not.toContain(FIXES[2].line);
    // The whole change against the original commit, and the turn's own.
    expect(turn?.diff).toContain(`+${FIXES[1].line}`);
    expect(turn?.diff).toContain(`+${USAGE}`);
    expect(turn?.turnDiff).toContain(`+${USAGE}`);
    expect(turn?.turnDiff).not.toContain(`-${BUGGY}`);
    expect(turn?.verification).toMatchObject({ passed: true });
  });

  it('applies the pick and its follow-up to a fresh clone, where the test passes', async () => {
    const dir = world.clone('bon-model-clone');
    const applied = await world.berthIn(dir, 'task', 'apply', task.id);
    expect(applied.code, applied.stderr).toBe(0);
    expect(readFileSync(join(dir, 'src', 'add.sh'), 'utf8')).toBe(
      `# add two numbers\n${USAGE}\n${FIXES[1].line}\n`,
    );
    expect(execFileSync('sh', ['test.sh'], { cwd: dir, encoding: 'utf8' })).toContain(
      'tests passed',
    );
  });

  it('opens a draft PR on GitHub Enterprise (/api/v3) from berth/<task-id>', async () => {
    const r = await berth('task', 'pr', task.id, '--title', 'Fix add()', '--draft');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('https://github.example/acme/adder/pull/1');
    expect(r.stderr).toContain(`pushed berth/${task.id}`);
    expect(r.stderr).toContain('pull request #1 opened');

    const branch = `berth/${task.id}`;
    const commit = runGit(bare, 'rev-parse', `refs/heads/${branch}`);
    expect(runGit(bare, 'show', `${commit}:src/add.sh`)).toBe(
      `# add two numbers\n${USAGE}\n${FIXES[1].line}`,
    );
    expect(runGit(bare, 'log', '-1', '--format=%s', commit)).toBe(PROMPT);

    expect(github.requests.length).toBeGreaterThan(0);
    for (const request of github.requests) {
      expect(request.path).toMatch(/^\/api\/v3\/repos\/acme\/adder\/pulls/);
      expect(request.headers.accept).toBe('application/vnd.github+json');
      expect(request.headers['user-agent']).toMatch(/^berth/);
      expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    }
    const create = github.requests.find((q) => q.method === 'POST');
    expect(create?.headers['content-type']).toMatch(/^application\/json/);
    expect(create?.body).toEqual({
      title: 'Fix add()',
      body: `The agent's summary:\n\n\`\`\`text\nDocumented add() with a usage line.\n\`\`\`\n\n---\nMade by Berth: task ${task.id}, attempt ${followUp}.`,
      head: branch,
      base: 'main',
      draft: true,
    });
    expect(github.pulls).toHaveLength(1);
    expect(github.pulls[0]).toMatchObject({ head: branch, base: 'main', draft: true });
  });
});
