/* global process, console, performance, setInterval, clearInterval, setTimeout, URL */
// Masking secret values in a diff (issue 21, the review of item 2): how long the orchestrator
// takes to mask a diff of about 20 MB as results are collected (checkResultDiff: header check,
// then the masking), the longest time the event loop waits meanwhile, and how much the process's
// resident memory grows (its high-water mark, so each case runs in a fresh process), for diffs of
// `%41` escapes, `\u0041` escapes, ESC sequences and plain text, against a one-value masker.
//
// Run: npx tsc -b && node bench/diff-masking.bench.js [--case NAME] [--dist DIR]
// (--dist: a build of another commit, for a before/after; without --case it runs each case in a
// child process.) Needs no Docker engine.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const CASES = {
  '%41 escapes': '%41'.repeat(1000),
  '\\u0041 escapes': '\\u0041'.repeat(600),
  'ESC sequences': '\x1b[m'.repeat(1000),
  'plain text': 'a'.repeat(3000),
};
const dist = arg('--dist') ?? new URL('../dist', import.meta.url).pathname;
const only = arg('--case');

if (only === undefined) {
  for (const name of Object.keys(CASES)) {
    const run = spawnSync(
      process.execPath,
      [fileURLToPath(import.meta.url), '--case', name, '--dist', dist],
      { encoding: 'utf8' },
    );
    process.stdout.write(run.stdout + run.stderr);
  }
} else {
  const { checkResultDiff } = await import(`${dist}/lifecycle/result-diff.js`);
  const { SecretMasker } = await import(`${dist}/secrets/secret-masker.js`);
  const line = CASES[only];
  const lines = Math.floor((19.5 * 1024 * 1024) / (line.length + 2));
  const body = `+${line}\n`.repeat(lines);
  const diff = `diff --git a/x b/x\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/x\n@@ -0,0 +1,${lines} @@\n${body}`;
  const ctx = { masker: new SecretMasker(['npm_4f9c1e7a2b5d8e0f3a6c']), emit: () => undefined };
  const rssBefore = process.resourceUsage().maxRSS;
  // The longest gap between ticks of a 2 ms interval (a blocked loop shows as one long gap), and
  // the most CPU time the process used between two ticks (the work of one turn, garbage
  // collection threads included; on a loaded machine a wall-clock gap is mostly waiting for a core).
  let longest = 0;
  let cpuMost = 0;
  let last = performance.now();
  let cpuLast = process.cpuUsage();
  const timer = setInterval(() => {
    const now = performance.now();
    const cpu = process.cpuUsage();
    cpuMost = Math.max(cpuMost, (cpu.user + cpu.system - cpuLast.user - cpuLast.system) / 1000);
    cpuLast = cpu;
    longest = Math.max(longest, now - last);
    last = now;
  }, 2);
  const started = performance.now();
  await checkResultDiff(ctx, diff);
  const took = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 20));
  clearInterval(timer);
  const grown = (process.resourceUsage().maxRSS - rssBefore) / 1024;
  // The control: the same interval for as long with nothing to do (the machine's own gaps).
  let idle = 0;
  last = performance.now();
  const idleTimer = setInterval(() => {
    const now = performance.now();
    idle = Math.max(idle, now - last);
    last = now;
  }, 2);
  await new Promise((resolve) => setTimeout(resolve, took));
  clearInterval(idleTimer);
  console.log(
    `${only.padEnd(16)} ${(diff.length / 1048576).toFixed(1)} MB: ${took.toFixed(0).padStart(5)} ms, ` +
      `longest event-loop gap ${longest.toFixed(0).padStart(5)} ms (CPU between ticks at most ${cpuMost.toFixed(0)} ms), ` +
      `max RSS +${grown.toFixed(0)} MB (idle for as long: longest gap ${idle.toFixed(0)} ms)`,
  );
}
