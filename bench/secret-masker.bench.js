/* global process, console, performance */
// Secret masker throughput (issue 21 item 6: the masker reads a view of the text with escape
// sequences, line breaks and encodings undone): MB/s of `SecretMasker` on a build log streamed in
// 4 KiB chunks, the same log with colour codes on every line, and one 20 MB diff masked whole
// (what results do), with 5 secrets; against the masker before the view (the file as of commit
// 5137571, read with git and transpiled by TypeScript in this run), so before and after share
// the machine and the moment. Medians of --rounds runs after as many warm-up runs.
//
// Run: npx tsc -b && node bench/secret-masker.bench.js [--rounds N]
// Needs no Docker engine; needs git and this repository's history for the baseline.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { SecretMasker } from '../dist/secrets/secret-masker.js';

const BASELINE_COMMIT = '5137571';

const rounds = (() => {
  const i = process.argv.indexOf('--rounds');
  return i > 0 ? Number(process.argv[i + 1]) : 5;
})();

const SECRETS = [
  'ghp_0123456789abcdefABCDEF0123456789abcd',
  'sk-live-9f8e7d6c5b4a3928',
  'hunter2-password!',
  'AKIAIOSFODNN7EXAMPLE',
  'postgres://u:p4ss@db/x',
];

function buildLog(colour) {
  const lines = [];
  for (let i = 0; i < 20_000; i++) {
    const line = `npm http fetch GET 200 https://registry.example/pkg-${i}/-/pkg-${i}-1.0.${i % 10}.tgz ${i % 97}ms (cache miss) 50%`;
    lines.push(colour ? `\x1b[3${i % 8}m${line}\x1b[0m` : line);
  }
  return `${lines.join('\n')}\n`;
}

function buildDiff() {
  const lines = ['diff --git a/x b/x', '--- a/x', '+++ b/x', '@@ -1,1 +1,400000 @@'];
  for (let i = 0; lines.length < 400_000; i++)
    lines.push(`+const value${i} = "line ${i} of the file, with \\"quotes\\" and 100% of it";`);
  return `${lines.join('\n')}\n`;
}

/** The masker before the view, from git (transpiled; it imports nothing). */
async function oldMasker() {
  const source = execFileSync('git', ['show', `${BASELINE_COMMIT}:src/secrets/secret-masker.ts`], {
    encoding: 'utf8',
  });
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-masker-'));
  try {
    writeFileSync(join(dir, 'old-secret-masker.mjs'), js);
    return (await import(join(dir, 'old-secret-masker.mjs'))).SecretMasker;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function streamed(masker, text) {
  const stream = masker.createStream();
  let out = 0;
  for (let i = 0; i < text.length; i += 4096) out += stream.push(text.slice(i, i + 4096)).length;
  return out + stream.flush().length;
}

function rate(bytes, fn) {
  for (let r = 0; r < rounds; r++) fn();
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    fn();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  return {
    ms: Math.round(ms * 10) / 10,
    mbPerS: Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10,
  };
}

const masker = new SecretMasker(SECRETS);
const Old = await oldMasker();
const old = new Old(SECRETS);
const plain = buildLog(false);
const coloured = buildLog(true);
const diff = buildDiff();
const rows = [
  ['build log, 4 KiB chunks', plain, (m) => streamed(m, plain)],
  ['coloured log, 4 KiB chunks', coloured, (m) => streamed(m, coloured)],
  ['diff masked whole', diff, (m) => m.mask(diff)],
].map(([name, text, run]) => {
  const masked = rate(text.length, () => run(masker));
  const base = rate(text.length, () => run(old));
  return {
    text: name,
    mb: Math.round(text.length / 1e5) / 10,
    maskerMs: masked.ms,
    maskerMBps: masked.mbPerS,
    beforeMs: base.ms,
    beforeMBps: base.mbPerS,
  };
});
console.table(rows);
