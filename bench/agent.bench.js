/* global process, console, performance, AbortController, URL, setTimeout */
// Agent loop benchmark: the orchestrator's overhead per tool call, with a fake Chat Completions
// server on loopback (streaming, like a real API) and a real sandbox (DockerRuntime, exec agent).
//  A. model answer received -> command started: the fake server's end of the streamed answer to
//     the sandbox exec being called (SSE parsing, events, argument validation, dispatch).
//  B. command finished -> next model request sent: the exec returning to the fake server
//     receiving the next request (output masking and cutting, events, the conversation as JSON,
//     the HTTP request on loopback).
// The command is `true` (scenario "small output") or prints 200 KB (scenario "200 KB output");
// each run is one agent loop of TURNS tool calls, so the conversation grows as in a real attempt.
// The scenarios marked "recorded" send the events through the production path, as the attempt
// runner and the scheduler wire it: secrets masked by a SecretMasker, the command's live output
// through a PhaseOutput, every event numbered and written by an AttemptRecorder to a real
// SqliteStore (a file in a temporary directory); the others push the events to an array.
//
// The fake model runs in this thread (--model-in-worker: in a worker thread).
//
// Run: npx tsc -b && node bench/agent.bench.js [--quick] [--image REF] [--model-in-worker]
// Needs the minimal image (`berth image build minimal`; see bench/bench-support.js).
// Prints a JSON summary and a Markdown table for docs/benchmarks.md.
import http from 'node:http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import os from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DockerRuntime } from '../dist/adapters/runtime/docker/docker-runtime.js';
import { OpenAiCompatibleModel } from '../dist/adapters/model/openai-compatible-model.js';
import { runAgentLoop } from '../dist/agent/agent-loop.js';
import { RuntimeAgentSandbox } from '../dist/agent/runtime-agent-sandbox.js';
import { SqliteStore } from '../dist/adapters/store/sqlite/sqlite-store.js';
import { AttemptRecorder } from '../dist/lifecycle/attempt-recorder.js';
import { PhaseOutput } from '../dist/lifecycle/phase-output.js';
import { SecretMasker } from '../dist/secrets/secret-masker.js';
import { benchImage } from './bench-support.js';

const QUICK = process.argv.includes('--quick');
const SAME_THREAD = !process.argv.includes('--model-in-worker');
const IMAGE = benchImage();
const RUNS = QUICK ? 1 : 3;
const TURNS = QUICK ? 20 : 40;

const SMALL = (n) => ['true', String(n)];
const BIG = (n) => ['bash', '-c', `head -c 200000 /dev/zero | tr '\\0' a; echo ${n}`];
const SCENARIOS = [
  { name: 'small output', command: SMALL, recorded: false },
  { name: '200 KB output', command: BIG, recorded: false },
  { name: 'small output, recorded', command: SMALL, recorded: true },
  { name: '200 KB output, recorded', command: BIG, recorded: true },
];

/** The attempt's events as production handles them: masked, numbered, written to SQLite. */
async function productionEvents(store, scenario, run) {
  const now = new Date().toISOString();
  const taskId = `task_bench_${randomBytes(4).toString('hex')}`;
  const attemptId = `att_bench_${randomBytes(4).toString('hex')}`;
  await store.createTask(
    {
      id: taskId,
      environmentId: 'env_bench',
      prompt: `${scenario.name} ${run}`,
      command: null,
      ref: {},
      repository: null,
      attemptCount: 1,
      status: 'running',
      createdAt: now,
      updatedAt: now,
    },
    [
      {
        id: attemptId,
        taskId,
        index: 0,
        phase: 'agent',
        cacheHit: true,
        error: null,
        result: null,
        createdAt: now,
        startedAt: now,
        finishedAt: null,
      },
    ],
  );
  const recorder = new AttemptRecorder(store, attemptId, 'bench', new Set([() => undefined]));
  const masker = new SecretMasker(['bench-secret-value-0123456789']);
  return {
    emit: recorder.emit,
    mask: (text) => masker.mask(text),
    commandOutput: () => new PhaseOutput(masker, recorder.emit),
    flush: () => recorder.flush(),
  };
}

/**
 * A streaming Chat Completions server answering each request with one shell call, then "done".
 * `mark(kind)` is told when a request has fully arrived and when an answer has been written.
 */
function fakeModelServer(mark) {
  let scenario = SCENARIOS[0];
  let turn = 0;
  const server = http.createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      mark('request');
      turn += 1;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta, finish) =>
        `data: ${JSON.stringify({ id: 'b', object: 'chat.completion.chunk', created: 0, model: 'bench', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      let body = chunk({ role: 'assistant', content: '' }, null);
      if (turn > TURNS) {
        body += chunk({ content: 'done' }, null) + chunk({}, 'stop');
      } else {
        const args = JSON.stringify({ command: scenario.command(turn) });
        body += chunk(
          {
            tool_calls: [
              {
                index: 0,
                id: `call_${turn}`,
                type: 'function',
                function: { name: 'shell', arguments: '' },
              },
            ],
          },
          null,
        );
        for (let i = 0; i < args.length; i += 8)
          body += chunk(
            { tool_calls: [{ index: 0, function: { arguments: args.slice(i, i + 8) } }] },
            null,
          );
        body += chunk({}, 'tool_calls');
      }
      body += `data: ${JSON.stringify({ id: 'b', object: 'chat.completion.chunk', created: 0, model: 'bench', choices: [], usage: { prompt_tokens: 1000, completion_tokens: 20, total_tokens: 1020 } })}\n\n`;
      body += 'data: [DONE]\n\n';
      res.end(body, () => mark('answer'));
    });
  });
  return {
    listen: () =>
      new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port))),
    reset(index) {
      scenario = SCENARIOS[index];
      turn = 0;
    },
    close: () => new Promise((done) => server.close(done)),
  };
}

/**
 * The fake model, in the benchmark's own thread (as every run so far measured it), or with
 * --model-in-worker in a worker thread (as a remote API, its reading of the request does not run
 * on the orchestrator's event loop; its clock is aligned through performance.timeOrigin).
 */
async function startFakeModel(timeline) {
  if (SAME_THREAD) {
    const server = fakeModelServer((kind) =>
      (kind === 'request' ? timeline.requests : timeline.answers).push(performance.now()),
    );
    const port = await server.listen();
    return {
      url: `http://127.0.0.1:${port}/v1`,
      reset: async (index) => server.reset(index),
      settle: async () => undefined,
      close: () => server.close(),
    };
  }
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { fakeModel: true },
    argv: process.argv.slice(2), // the same --quick (the number of turns)
  });
  const replies = [];
  worker.on('message', (m) => {
    if (m.kind === 'request') timeline.requests.push(m.at - performance.timeOrigin);
    else if (m.kind === 'answer') timeline.answers.push(m.at - performance.timeOrigin);
    else replies.shift()?.(m);
  });
  const reply = () => new Promise((resolve) => replies.push(resolve));
  const { port } = await reply();
  return {
    url: `http://127.0.0.1:${port}/v1`,
    async reset(index) {
      const done = reply();
      worker.postMessage({ reset: index });
      await done;
    },
    /** Waits for the worker's marks of a run to arrive. */
    async settle(count) {
      while (timeline.requests.length < count || timeline.answers.length < count)
        await new Promise((resolve) => setTimeout(resolve, 5));
    },
    close: () => worker.terminate(),
  };
}

/** The worker thread's side: the server, its marks posted with an absolute time. */
async function serveFakeModelInWorker() {
  const server = fakeModelServer((kind) =>
    parentPort.postMessage({ kind, at: performance.timeOrigin + performance.now() }),
  );
  parentPort.on('message', (m) => {
    server.reset(m.reset);
    parentPort.postMessage({ kind: 'reset' });
  });
  parentPort.postMessage({ kind: 'listening', port: await server.listen() });
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function stats(values) {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: Math.max(...values),
  };
}

async function main() {
  const runtime = new DockerRuntime({ instance: `bench-agent-${randomBytes(3).toString('hex')}` });
  if (!(await runtime.imageExists(IMAGE))) {
    console.error(
      `${IMAGE} is missing: run \`berth image build minimal\` first (or give --image REF, or set BERTH_TEST_IMAGE)`,
    );
    process.exit(1);
  }
  const info = await runtime.create({
    image: IMAGE,
    labels: { 'berth.task': 'bench-agent' },
    resources: { cpus: 1, memoryMb: 512, pids: 256 },
  });
  const dataDir = mkdtempSync(join(os.tmpdir(), 'berth-bench-agent-'));
  const store = SqliteStore.open(dataDir);
  await store.migrate();
  const timeline = { answers: [], requests: [], execStarts: [], execEnds: [] };
  const fake = await startFakeModel(timeline);
  try {
    await runtime.start(info.id);
    await runtime.exec(info.id, { argv: ['mkdir', '-p', '/workspace'] });
    const inner = new RuntimeAgentSandbox(runtime, info.id, '/workspace', { CI: '1' });
    // Times only the agent's own commands (not the AGENTS.md lookup at the start).
    const sandbox = {
      workdir: inner.workdir,
      async exec(argv, options) {
        const own =
          argv[0] === 'true' ||
          (argv[0] === 'bash' && argv[1] === '-c' && argv[2]?.startsWith('head'));
        if (own) timeline.execStarts.push(performance.now());
        try {
          return await inner.exec(argv, options);
        } finally {
          if (own) timeline.execEnds.push(performance.now());
        }
      },
      readFile: (p) => inner.readFile(p),
      writeFile: (p, d, m) => inner.writeFile(p, d, m),
      deleteFile: (p) => inner.deleteFile(p),
    };
    const model = new OpenAiCompatibleModel({ baseUrl: fake.url, apiKey: 'bench', model: 'bench' });
    const results = {};
    for (const [index, scenario] of SCENARIOS.entries()) {
      const a = [];
      const b = [];
      const exec = [];
      for (let run = 0; run < RUNS + 1; run += 1) {
        for (const list of Object.values(timeline)) list.length = 0;
        await fake.reset(index);
        const events = [];
        const production = scenario.recorded
          ? await productionEvents(store, scenario, run)
          : undefined;
        const result = await runAgentLoop({
          model,
          sandbox,
          prompt: 'benchmark',
          emit: production?.emit ?? ((e) => events.push(e)),
          ...(production ? { mask: production.mask, commandOutput: production.commandOutput } : {}),
          signal: new AbortController().signal,
          limits: { maxTurns: TURNS + 5 },
        });
        await production?.flush();
        await fake.settle(TURNS + 1);
        if (result.stopReason !== 'completed' || result.turns !== TURNS + 1)
          throw new Error(`unexpected end: ${result.stopReason} after ${result.turns}`);
        if (run === 0) continue; // warm-up
        // Request k+1 follows answer k; the exec of turn k sits between them.
        for (let k = 0; k < TURNS; k += 1) {
          a.push(timeline.execStarts[k] - timeline.answers[k]);
          b.push(timeline.requests[k + 1] - timeline.execEnds[k]);
          exec.push(timeline.execEnds[k] - timeline.execStarts[k]);
        }
      }
      results[scenario.name] = {
        answerToCommand: stats(a),
        commandToRequest: stats(b),
        execRoundTrip: stats(exec),
      };
    }
    const summary = {
      machine: `${os.cpus().length} cores, ${os.type()} ${os.release()}, node ${process.version}`,
      image: IMAGE,
      fakeModel: SAME_THREAD ? 'same thread' : 'worker thread',
      load: os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' '),
      runs: RUNS,
      turns: TURNS,
      results,
    };
    console.log(JSON.stringify(summary, null, 2));
    const f = (v) => v.toFixed(2);
    console.log(
      '\n| scenario | overhead | p50 ms | p90 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- | --- |',
    );
    for (const [name, r] of Object.entries(results)) {
      console.log(
        `| ${name} | answer received → command started | ${f(r.answerToCommand.p50)} | ${f(r.answerToCommand.p90)} | ${f(r.answerToCommand.p99)} | ${f(r.answerToCommand.max)} |`,
      );
      console.log(
        `| ${name} | command finished → next request sent | ${f(r.commandToRequest.p50)} | ${f(r.commandToRequest.p90)} | ${f(r.commandToRequest.p99)} | ${f(r.commandToRequest.max)} |`,
      );
      console.log(
        `| ${name} | (the exec itself, for scale) | ${f(r.execRoundTrip.p50)} | ${f(r.execRoundTrip.p90)} | ${f(r.execRoundTrip.p99)} | ${f(r.execRoundTrip.max)} |`,
      );
    }
  } finally {
    await fake.close();
    await runtime.remove(info.id).catch(() => undefined);
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (isMainThread)
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
else if (workerData?.fakeModel) await serveFakeModelInWorker();
