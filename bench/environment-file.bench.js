/* global process, console, fetch, setTimeout, clearTimeout, performance, Buffer, structuredClone */
// Environment file parsing (issue 21 item 3): for each file of a hostile suite (a 1 MiB scalar,
// 40,000 keys in 400 KB, 1 MiB of sequence items, an alias bomb, deep nesting, the largest file
// the limits accept), how long Berth takes to accept or refuse it in place (`berth env validate`)
// and through `POST /v1/environments/validate` (a real server in a child process), how long the
// server's event loop is held (its largest event-loop delay) and the slowest `/health` answer
// while the file is parsed; and, as the baseline, the YAML library's own parse as the old code ran
// it (`uniqueKeys: true`, then `toJS()`, on the event loop), cut off at --baseline-cap seconds.
// Then the same for JSON bodies (`{"spec": …}`, the API's other shape): the work on the worker,
// the longest event-loop task now (the text copied over, the bounded answer back, the body's
// schema, the service's check) and, as the baseline in the same run, the old code's one task on
// the loop (`JSON.parse` + the body's schema + the service's check with its key count).
//
// Run: npx tsc -b && node bench/environment-file.bench.js [--rounds N] [--baseline-cap S]
// [--json-only] (the JSON bodies alone)
// Needs no Docker engine. The server's data directory is a temporary one, removed at the end.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

const flag = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

/** The server side: a real Berth server on loopback; reports its event-loop delay on request. */
async function serve() {
  const { loadConfig } = await import('../dist/config/config.js');
  const { createLogger } = await import('../dist/util/logger.js');
  const { startServer } = await import('../dist/server/main.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-env-'));
  const config = loadConfig(
    { dataDir, host: '127.0.0.1', port: 0, allowLocalRepositories: false, logLevel: 'error' },
    { HOME: dataDir, BERTH_EXTRA_CA_FILES: '' },
  );
  const server = await startServer(config, createLogger('error', { write: () => {} }));
  let delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  process.on('message', (message) => {
    if (message === 'delay') {
      process.send?.({ maxDelayMs: delay.max / 1e6 });
      delay.disable();
      delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
    } else if (message === 'stop') {
      void server.close().then(() => {
        rmSync(dataDir, { recursive: true, force: true });
        process.exit(0);
      });
    }
  });
  process.send?.({ url: server.url, token: server.adminToken });
}

const HEAD = 'name: bench\nrepository: https://git.example/acme/app.git\n';
const MiB = 1024 * 1024;

function keys(count) {
  const lines = [HEAD, 'env:\n'];
  for (let i = 0; i < count; i++) lines.push(`  K${i}: v\n`);
  return lines.join('');
}

/** JSON bodies for the same routes (the API's other shape). */
function jsonSuite() {
  const spec = { name: 'bench', repository: 'https://git.example/acme/app.git' };
  const env = (count) =>
    Object.fromEntries(Array.from({ length: count }, (_, i) => [`K${i}`, 'v']));
  const body = (value) => JSON.stringify(value);
  const deep = 100_000;
  const unknown = Array.from({ length: 50_000 }, (_, i) => `"x${i}":0`).join(',');
  return [
    ['small (typical)', body({ spec: { ...spec, setup: 'npm ci', env: { NODE_ENV: 'test' } } })],
    ['1 MiB, one scalar', body({ spec: { ...spec, setup: 'x'.repeat(MiB - 100) } })],
    ['509 KB, 40,000 keys', body({ spec: { ...spec, env: env(40_000) } })],
    ['1 MiB, 75,000 keys', body({ spec: { ...spec, env: env(75_000) } })],
    ['509 KB, 40,000 secrets', body({ spec, secrets: env(40_000) })],
    ['50,000 unknown fields', `{"spec":${body(spec)},${unknown}}`],
    [
      'nesting 100,000 deep',
      `{"spec":${body(spec).slice(0, -1)},"env":${'{"a":'.repeat(deep)}1${'}'.repeat(deep)}}}`,
    ],
    ['largest accepted: 1,900 keys', body({ spec: { ...spec, env: env(1_900) } })],
  ].map(([name, text]) => [name, text.slice(0, MiB)]);
}

function suite() {
  let bomb = `${HEAD}a0: &a0 [x, x, x, x, x, x, x, x, x]\n`;
  for (let i = 1; i < 9; i++)
    bomb += `a${i}: &a${i} [${Array(9)
      .fill(`*a${i - 1}`)
      .join(', ')}]\n`;
  let block = `${HEAD}env:\n`;
  for (let depth = 1; depth <= 200; depth++) block += `${' '.repeat(depth)}k${depth}:\n`;
  const items = `${HEAD}internet:\n  domains:\n`;
  return [
    ['(none: /health alone)', undefined],
    ['small (typical)', `${HEAD}setup: npm ci\nenv:\n  NODE_ENV: test\n`],
    ['1 MiB, one scalar', `${HEAD}setup: "${'x'.repeat(MiB - HEAD.length - 12)}"\n`],
    ['400 KB, 40,000 keys', keys(40_000)],
    ['1 MiB, 80,000 items', items + '    - a.test\n'.repeat(80_000)],
    ['500 KB, 39,000 sequence items', items + '    - a.test\n'.repeat(39_000)],
    ['alias bomb (9^9)', bomb],
    ['flow nesting 100,000 deep', `${HEAD}env: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`],
    ['block nesting 200 deep', block],
    ['largest accepted: 1,900 keys', keys(1_900)],
  ].map(([name, text]) => [name, text?.slice(0, MiB)]);
}

/** The old code's parse (the library's duplicate check), on a worker so it can be cut off. */
function baseline(text, capMs) {
  return new Promise((resolve) => {
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const yaml = require(workerData.yamlPath);
       const started = performance.now();
       try { yaml.parseDocument(workerData.text, { uniqueKeys: true }).toJS(); } catch {}
       parentPort.postMessage(performance.now() - started);`,
      {
        eval: true,
        workerData: { text, yamlPath: fileURLToPath(import.meta.resolve('yaml')) },
      },
    );
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve(undefined);
    }, capMs);
    worker.once('message', (ms) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(ms);
    });
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const round = (ms) => (ms === undefined ? undefined : Math.round(ms * 10) / 10);

async function main() {
  const rounds = flag('--rounds', 5);
  const baselineCapMs = flag('--baseline-cap', 20) * 1000;
  const { parseEnvironmentFile, parseEnvironmentSpec, specFromComposed } =
    await import('../dist/domain/environment/environment-file.js');
  const { composeEnvironmentYaml, ENVIRONMENT_YAML_LIMITS } =
    await import('../dist/domain/environment/environment-yaml.js');
  const yaml = await import('yaml');
  const { composeEnvironmentBody, valueLimitIssue } =
    await import('../dist/domain/environment/environment-json.js');
  const { requestBodies } = await import('../dist/server/api-schemas.js');
  const FIELDS = Object.keys(requestBodies.create.shape);
  /**
   * What the server's event loop does for a file besides the copy of the text over: the copy of
   * the worker's answer back, the schema, and the environment service's own check.
   */
  const mainThread = (text) => {
    const composed = composeEnvironmentYaml(yaml, text, ENVIRONMENT_YAML_LIMITS, false);
    const steps = [];
    let started = performance.now();
    const copy = structuredClone(composed);
    steps.push(performance.now() - started);
    try {
      started = performance.now();
      const spec = specFromComposed(text, copy);
      steps.push(performance.now() - started);
      started = performance.now();
      parseEnvironmentSpec(spec);
      steps.push(performance.now() - started);
    } catch {
      // refused: the refusal is the answer
    }
    // The server runs these as separate tasks of its event loop: the longest one holds it.
    return Math.max(...steps);
  };

  /**
   * A JSON body now: the worker's work (parse and limits), and the event loop's longest task (the
   * text copied to the worker, the answer copied back, the body's schema, the service's check: the
   * server runs them as separate tasks, see request-body.ts).
   */
  const jsonNow = (text) => {
    let started = performance.now();
    const answer = composeEnvironmentBody(text, ENVIRONMENT_YAML_LIMITS, FIELDS, valueLimitIssue);
    const workerMs = performance.now() - started;
    const steps = [];
    started = performance.now();
    structuredClone(text);
    steps.push(performance.now() - started);
    started = performance.now();
    const copy = structuredClone(answer);
    steps.push(performance.now() - started);
    let outcome = 'accepted';
    if (!copy.ok) outcome = `refused: ${copy.message ?? copy.issue.message}`;
    else {
      started = performance.now();
      const checked = requestBodies.create.safeParse(copy.value);
      steps.push(performance.now() - started);
      if (!checked.success) outcome = `refused: ${checked.error.issues[0]?.message}`;
      else
        try {
          started = performance.now();
          parseEnvironmentSpec(checked.data.spec);
          steps.push(performance.now() - started);
        } catch (error) {
          steps.push(performance.now() - started);
          outcome = `refused: ${error.details?.issues?.[0]?.message ?? error.message}`;
        }
    }
    return { workerMs, loopMs: Math.max(...steps), outcome };
  };
  /** The old code, as the baseline: all of it in one task of the event loop. */
  const jsonBefore = (text) => {
    const started = performance.now();
    try {
      const checked = requestBodies.create.safeParse(JSON.parse(text));
      if (checked.success) parseEnvironmentSpec(checked.data.spec);
    } catch {
      // refused: the refusal is the answer
    }
    return performance.now() - started;
  };

  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: 'inherit' });
  const next = () => new Promise((resolve) => child.once('message', resolve));
  const { url, token } = await next();

  /** `rounds` requests to the server, /health polled by this process while it works on each. */
  const throughApi = async (text, contentType) => {
    const api = [];
    let slowestHealth = 0;
    const loopDelays = [];
    let status = 0;
    for (let r = 0; r < rounds; r++) {
      child.send('delay');
      await next();
      let done = false;
      const poll = (async () => {
        while (!done) {
          const started = performance.now();
          await (await fetch(`${url}/health`)).text();
          slowestHealth = Math.max(slowestHealth, performance.now() - started);
        }
      })();
      const started = performance.now();
      if (text === undefined) await new Promise((resolve) => setTimeout(resolve, 200));
      else {
        const response = await fetch(`${url}/v1/environments/validate`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
          body: text,
        });
        await response.text();
        api.push(performance.now() - started);
        status = response.status;
      }
      done = true;
      await poll;
      child.send('delay');
      loopDelays.push((await next()).maxDelayMs);
    }
    return { api, status, loopDelays, slowestHealth };
  };

  const rows = [];
  for (const [name, text] of process.argv.includes('--json-only') ? [] : suite()) {
    // In place (the CLI): the whole parse and validation, accepted or refused.
    const inPlace = [];
    const onLoop = [];
    let answer = '';
    for (let r = 0; r < rounds && text !== undefined; r++) {
      const started = performance.now();
      try {
        parseEnvironmentFile(text);
        answer = 'accepted';
      } catch (error) {
        answer = `refused: ${error.details?.issues?.[0]?.message ?? error.message}`;
      }
      inPlace.push(performance.now() - started);
      if (Buffer.byteLength(text) <= ENVIRONMENT_YAML_LIMITS.maxBytes)
        onLoop.push(mainThread(text));
    }
    // Through the API, with /health polled by this process while the server parses.
    const { api, status, loopDelays, slowestHealth } = await throughApi(text, 'application/yaml');
    const old = text === undefined ? undefined : await baseline(text, baselineCapMs);
    const row = {
      file: name,
      bytes: text === undefined ? 0 : Buffer.byteLength(text),
      answer: answer.slice(0, 48),
      inPlaceMs: round(median(inPlace)),
      // The longest task of the server's event loop for the file (median; see mainThread).
      loopWorkMs: onLoop.length > 0 ? round(median(onLoop)) : 0,
      apiMs: round(median(api)),
      status,
      // The server's largest event-loop delay while the file was parsed: median and worst round.
      loopDelayMs: `${round(median(loopDelays))} / ${round(Math.max(...loopDelays))}`,
      slowestHealthMs: round(slowestHealth),
      oldParseOnLoopMs:
        text === undefined ? undefined : old === undefined ? `> ${baselineCapMs}` : round(old),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  if (rows.length > 0) console.table(rows);

  const jsonRows = [];
  for (const [name, text] of jsonSuite()) {
    const now = [];
    const before = [];
    let answer = '';
    for (let r = 0; r < rounds; r++) {
      // Alternated, so the machine's load falls on both alike.
      before.push(jsonBefore(text));
      const measured = jsonNow(text);
      now.push(measured);
      answer = measured.outcome;
    }
    const { api, status, loopDelays, slowestHealth } = await throughApi(text, 'application/json');
    const row = {
      file: name,
      bytes: Buffer.byteLength(text),
      answer: answer.slice(0, 48),
      workerMs: round(median(now.map((m) => m.workerMs))),
      // The event loop's longest task for the body now, and the old code's one task (medians).
      loopTaskMs: round(median(now.map((m) => m.loopMs))),
      oldLoopTaskMs: round(median(before)),
      apiMs: round(median(api)),
      status,
      loopDelayMs: `${round(median(loopDelays))} / ${round(Math.max(...loopDelays))}`,
      slowestHealthMs: round(slowestHealth),
    };
    jsonRows.push(row);
    console.log(JSON.stringify(row));
  }
  child.send('stop');
  console.table(jsonRows);
}

if (process.argv.includes('--serve')) await serve();
else await main();
