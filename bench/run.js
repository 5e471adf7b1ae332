/* global process, console */
// The benchmarks under bench/: `npm run bench` lists them (from each file's opening comment);
// `npm run bench -- NAME [FLAGS]` runs bench/NAME.bench.js with FLAGS (for example
// `npm run bench -- runtime --quick`); `npm run bench -- all [FLAGS]` runs every one in turn.
// They use the built dist/ (`npm run bench` builds it first) and the local Docker engine; their
// results go to docs/benchmarks.md with the machine they ran on.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = path.dirname(fileURLToPath(import.meta.url));
const SUFFIX = '.bench.js';

const names = readdirSync(DIR)
  .filter((file) => file.endsWith(SUFFIX))
  .map((file) => file.slice(0, -SUFFIX.length))
  .sort();

/** What a benchmark measures: its opening comment up to the first colon. */
function summary(name) {
  const lines = readFileSync(path.join(DIR, `${name}${SUFFIX}`), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('// '));
  const text = [];
  for (const line of lines.slice(start < 0 ? lines.length : start)) {
    if (!line.startsWith('// ')) break;
    text.push(line.slice(3).trim());
  }
  const joined = text.join(' ');
  const colon = joined.indexOf(': ');
  return colon < 0 ? joined : joined.slice(0, colon);
}

function run(name, flags) {
  console.error(`== bench/${name}${SUFFIX} ${flags.join(' ')}`.trimEnd());
  const result = spawnSync(process.execPath, [path.join(DIR, `${name}${SUFFIX}`), ...flags], {
    stdio: 'inherit',
  });
  return result.status ?? 1;
}

const [target, ...flags] = process.argv.slice(2);
if (target === undefined || target === '--help' || target === '-h') {
  console.log('Benchmarks (npm run bench -- NAME [FLAGS], or all):');
  const width = Math.max(...names.map((n) => n.length));
  for (const name of names) console.log(`  ${name.padEnd(width)}  ${summary(name)}`);
  console.log('Each file says its flags and what it needs at its top; results: docs/benchmarks.md');
} else if (target === 'all') {
  let failed = 0;
  for (const name of names) if (run(name, flags) !== 0) failed++;
  process.exitCode = failed === 0 ? 0 : 1;
} else if (names.includes(target)) {
  process.exitCode = run(target, flags);
} else {
  console.error(`unknown benchmark "${target}"; one of: ${names.join(', ')}, all`);
  process.exitCode = 2;
}
