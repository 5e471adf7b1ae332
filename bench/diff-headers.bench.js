/* global process, console, performance, setImmediate */
// Diff header checks (issue 21 item 1): how long Berth takes to read the headers of a large diff
// (the check every diff passes before it is stored, applied or pushed), in one go and in turns,
// and the largest event-loop delay while it reads in turns, for three diffs of about 20 MB: many
// small files, one 20 MB line of content, and a binary patch; with the old whole-array split as
// the baseline for the line walk.
//
// Run: npx tsc -b && node bench/diff-headers.bench.js [--rounds N]
// Needs no Docker engine.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const flag = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const ROUNDS = flag('--rounds', 5);
const { readDiffHeaders, readDiffHeadersAsync } = await import('../dist/git/diff-headers.js');

function manyFiles() {
  const parts = [];
  for (let n = 0; parts.reduce((a, p) => a + p.length, 0) < 20 * 1024 * 1024 && n < 30000; n++) {
    parts.push(
      `diff --git a/src/f${n}.ts b/src/f${n}.ts\nindex 1234567..89abcde 100644\n--- a/src/f${n}.ts\n+++ b/src/f${n}.ts\n@@ -1,20 +1,20 @@\n` +
        ' context line of code here\n'.repeat(10) +
        '-old line of code here\n+new line of code here\n' +
        ' context line of code here\n'.repeat(9),
    );
  }
  return parts.join('');
}

function oneLine() {
  return `diff --git a/min.js b/min.js\n--- a/min.js\n+++ b/min.js\n@@ -1 +1 @@\n-a\n+${'x'.repeat(20 * 1024 * 1024)}\n`;
}

function binary() {
  const line = `z${'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+'.slice(0, 65)}`;
  const lines = Math.floor((20 * 1024 * 1024) / (line.length + 1));
  return `diff --git a/blob.bin b/blob.bin\nnew file mode 100644\nindex 0000000..1111111\nGIT binary patch\nliteral 1\n${`${line}\n`.repeat(lines)}\nliteral 0\nHcmV?d00001\n\n`;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const [name, make] of [
  ['many small files', manyFiles],
  ['one 20 MB line', oneLine],
  ['binary patch', binary],
]) {
  const diff = make();
  const sync = [];
  const turns = [];
  const delays = [];
  const split = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t = performance.now();
    const sections = readDiffHeaders(diff).sections.length;
    sync.push(performance.now() - t);
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    t = performance.now();
    await readDiffHeadersAsync(diff);
    turns.push(performance.now() - t);
    await new Promise((resolve) => setImmediate(resolve));
    delay.disable();
    delays.push(delay.max / 1e6);
    t = performance.now();
    let n = 0;
    for (const l of diff.split('\n')) n += l.length;
    split.push(performance.now() - t);
    if (r === 0)
      console.log(
        `${name}: ${(diff.length / 1048576).toFixed(1)} MB, ${sections} section(s), ${n > 0 ? 'read' : ''}`,
      );
  }
  console.log(
    `  median of ${ROUNDS}: in one go ${median(sync).toFixed(1)} ms; in turns ${median(turns).toFixed(1)} ms, largest event-loop delay ${median(delays).toFixed(1)} ms; baseline split + walk ${median(split).toFixed(1)} ms`,
  );
}
