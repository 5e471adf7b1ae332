import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';

/**
 * Issue 20 item 12 (Show): the docs' examples run as written. The blocks marked
 * `<!-- docs-test: environment -->` (YAML) and `<!-- docs-test: commands … -->` (shell) in
 * docs/environments.md and README.md are extracted and run against a real `berth serve`, on a
 * local repository shaped like expressjs/express (no lockfile, default branch `master`, no
 * dependencies, an `npm test`). The only changes: the repository URL becomes the local one, and
 * the placeholders TASK (the id `exec` printed), NAME (the environment) and env.yaml (its file).
 * In the README's block, a line with `|` or `…` is a pattern, not a command; commands that need
 * what a test has not (login, a model, the registry's images, another data directory) are named
 * below and left out.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const instance = `docs-${randomBytes(4).toString('hex')}`;
let server: ServeHandle;
let repo: string;
let clone: string;

/** The fenced block right after each marker line starting with `<!-- docs-test: kind`. */
function markedBlocks(file: string, kind: string): string[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]?.startsWith(`<!-- docs-test: ${kind}`)) continue;
    let start = i + 1;
    while (start < lines.length && !lines[start]?.startsWith('```')) start++;
    const end = lines.findIndex((l, at) => at > start && l.startsWith('```'));
    out.push(lines.slice(start + 1, end).join('\n'));
  }
  return out;
}

/** A command line's words as a POSIX shell splits these (quotes, a trailing # comment). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) {
    if (m[3]?.startsWith('#')) break;
    out.push(m[1] ?? m[2] ?? m[3] ?? '');
  }
  return out;
}

function git(dir: string, ...args: string[]): string {
  return execFileSync(
    'git',
    ['-C', dir, '-c', 'user.name=Docs', '-c', 'user.email=docs@berth.example', ...args],
    { encoding: 'utf8' },
  ).trim();
}

beforeAll(async () => {
  // Shaped like express: package.json with a test script, no lockfile, default branch master.
  repo = tempDir('docs-shop');
  git(repo, 'init', '-q', '-b', 'master');
  writeFileSync(
    join(repo, 'package.json'),
    `${JSON.stringify({ name: 'shop', version: '1.0.0', scripts: { test: 'node test.js' } }, null, 2)}\n`,
  );
  writeFileSync(join(repo, 'index.js'), 'module.exports = (a, b) => a + b;\n');
  writeFileSync(
    join(repo, 'test.js'),
    "if (require('./index.js')(2, 3) !== 5) process.exit(1);\nconsole.log('tests passed');\n",
  );
  writeFileSync(join(repo, '.gitignore'), 'node_modules/\n');
  git(repo, 'add', '-A');
  git(repo, 'commit', '-qm', 'shop');
  clone = tempDir('docs-clone');
  execFileSync('git', ['clone', '-q', repo, clone]);
  server = await startServe(['--allow-local-repos'], { BERTH_INSTANCE: instance });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  removeInstanceImages(instance);
});

describe("the docs' examples, run as written (docker)", () => {
  it('environments.md and README.md: the first environment, a command, show, diff, apply', async () => {
    const [yaml] = markedBlocks('docs/environments.md', 'environment');
    expect(yaml, 'the marked YAML example').toBeDefined();
    const name = /^name: (\S+)/m.exec(yaml ?? '')?.[1] ?? '';
    const url = /^repository: (\S+)/m.exec(yaml ?? '')?.[1] ?? '';
    expect(url).not.toBe('');
    const adapted = (yaml ?? '').replace(url, repo);
    writeFileSync(join(clone, `${name}.yaml`), adapted);
    writeFileSync(join(clone, 'env.yaml'), adapted);
    // The clone ignores the environment files (they are not part of the repository's change).
    writeFileSync(join(clone, '.git', 'info', 'exclude'), '*.yaml\n');

    const env = { BERTH_URL: server.url, BERTH_TOKEN: server.adminToken };
    let task: string | undefined;
    const ran: string[] = [];
    const run = async (line: string) => {
      const argv = words(line.replace(/^npx /, ''))
        .slice(1)
        .map((w) => (w === 'TASK' ? (task ?? 'TASK') : w === 'NAME' ? name : w));
      const r = await runBerth(argv, env, undefined, clone);
      ran.push(line);
      expect(r.code, `${line}\n${r.stdout}\n${r.stderr}`).toBe(0);
      task = /\btask (task_\w+)/.exec(r.stderr)?.[1] ?? task;
      return r;
    };

    const [commands] = markedBlocks('docs/environments.md', 'commands');
    const outputs: Record<string, string> = {};
    for (const line of (commands ?? '').split('\n').filter((l) => l.startsWith('npx berth '))) {
      const r = await run(line);
      outputs[words(line).slice(2, 4).join(' ')] = r.stdout + r.stderr;
    }
    // The default branch was asked, the setup ran npm install, verify judged the attempt.
    expect(outputs['task show']).toMatch(/succeeded\s.*\bbuilt\b.*\bpassed\b/);
    expect(outputs['task diff']).toContain('-  "version": "1.0.0"');
    expect(outputs['task diff']).toContain('+  "version": "1.0.1"');
    expect(JSON.parse(readFileSync(join(clone, 'package.json'), 'utf8'))).toMatchObject({
      version: '1.0.1',
    });
    const stored = await runBerth(['env', 'show', name, '--json'], env);
    expect(stored.stdout).toContain('"defaultBranch": "master"');

    // The README's block: its commands that a test can run (no login, model, registry images,
    // token or separate data directory), with NAME the environment above.
    const [readme] = markedBlocks('README.md', 'commands');
    const runnable = (readme ?? '')
      .split('\n')
      .filter((l) => l.startsWith('npx berth ') && !/[|…]/.test(l))
      .filter((l) => !/^npx berth (login|doctor|run|image|token) /.test(l))
      .filter((l) => !/^npx berth exec /.test(l) || l.includes('--command'));
    expect(runnable.length).toBeGreaterThanOrEqual(3);
    for (const line of runnable) await run(line);
    expect(ran.some((l) => l.includes('env test'))).toBe(true);
  }, 180_000);
});
