import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkResultDiff, maskStoredDiff } from '../../src/lifecycle/result-diff.js';
import type { SandboxContext } from '../../src/lifecycle/sandbox-context.js';
import { scanPatterns } from '../../src/lifecycle/secret-scan.js';
import { SecretMasker } from '../../src/secrets/secret-masker.js';

/**
 * Secrets in an attempt's diff, as git makes it (issue 21 item 2, the review after it): a
 * multi-line value, base64 wrapped at 76 columns, the blob id of the file that held a value, and
 * a 20 MB diff of escapes that must be masked with bounded memory, letting the event loop run.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The diff git makes when `files` are written into a fresh repository. */
function gitDiff(files: Record<string, string>): string {
  const work = mkdtempSync(join(tmpdir(), 'berth-rds-'));
  dirs.push(work);
  const git = (...a: string[]) =>
    execFileSync('git', ['-C', work, '-c', 'user.name=T', '-c', 'user.email=t@e', ...a], {
      encoding: 'utf8',
    });
  git('init', '-q');
  writeFileSync(join(work, 'README'), 'x\n');
  git('add', '-A');
  git('commit', '-qm', 'b');
  const base = git('rev-parse', 'HEAD').trim();
  for (const [name, content] of Object.entries(files)) writeFileSync(join(work, name), content);
  git('add', '-A');
  return git('diff', '--cached', '--binary', '--no-renames', base, '--');
}

function context(values: string[]): { ctx: SandboxContext; events: unknown[] } {
  const events: unknown[] = [];
  const ctx = {
    masker: new SecretMasker(values),
    emit: (e: unknown) => events.push(e),
  } as unknown as SandboxContext;
  return { ctx, events };
}

// A multi-line secret: an ssh deploy key, as docs/environments.md suggests for credentials.
const KEY_LINES = [
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACDqZx0cD1kXbW0Qm6mJc9Hq0bGQm9cWlQ3yA1Qd0lH2QwAAAJgm2r8SJtq/',
  'EgAAAAtzc2gtZWQyNTUxOQAAACDqZx0cD1kXbW0Qm6mJc9Hq0bGQm9cWlQ3yA1Qd0lH2Qw',
];
const KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_LINES.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;

describe('secrets in a diff', () => {
  it('a multi-line secret (a deploy key) written into the workspace is masked and its file named', async () => {
    const diff = gitDiff({ deploy_key: KEY, 'notes.txt': 'nothing\n' });
    for (const value of [KEY, KEY.trimEnd()]) {
      const { ctx, events } = context([value]);
      const checked = await checkResultDiff(ctx, diff);
      expect(checked.secretFiles).toEqual(['deploy_key']);
      for (const line of KEY_LINES) expect(checked.diff).not.toContain(line);
      // Each line masked on its own: the hunk keeps its shape.
      expect(checked.diff).toContain('+***\n+***\n+***\n');
      expect(checked.diff).toContain('+nothing\n');
      expect(JSON.stringify(events)).toContain('deploy_key');
    }
    // task pr's check (a masker of each line of each value) finds it too.
    expect((await maskStoredDiff(diff, new SecretMasker(scanPatterns([KEY])))).secretFiles).toEqual(
      ['deploy_key'],
    );
  });

  it('base64 of a secret wrapped at 76 columns (what `base64` prints) is masked, in results and for task pr', async () => {
    const token =
      'github_pat_11ABCDEFG0aBcDeFgHiJkLmN_oPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789';
    const wrapped = execFileSync('base64', { input: `x-access-token:${token}`, encoding: 'utf8' });
    expect(wrapped.split('\n').length).toBeGreaterThan(2);
    const diff = gitDiff({ 'auth.b64': wrapped });
    const { ctx } = context([token]);
    const checked = await checkResultDiff(ctx, diff);
    expect(checked.secretFiles).toEqual(['auth.b64']);
    for (const line of wrapped.split('\n').filter((l) => l.length > 20))
      expect(checked.diff).not.toContain(line.slice(8, -8));
    expect(
      (await maskStoredDiff(diff, new SecretMasker(scanPatterns([token])))).secretFiles,
    ).toEqual(['auth.b64']);
  });

  it('a masked section loses its blob ids: a guess of the value cannot be checked offline', async () => {
    const secret = 'Winter2025!';
    const diff = gitDiff({ '.env': `DATABASE_URL=postgres://app:${secret}@db:5432/app\n` });
    const { ctx } = context([secret]);
    const checked = await checkResultDiff(ctx, diff);
    expect(checked.secretFiles).toEqual(['.env']);
    const template = /^\+(DATABASE_URL=.*)$/m.exec(checked.diff)?.[1] ?? '';
    expect(template).toContain('***');
    const index = /^index ([0-9a-f]+)\.\.([0-9a-f]+)$/m.exec(checked.diff);
    expect(index).not.toBeNull();
    const content = Buffer.from(`${template.replace('***', secret)}\n`);
    const id = createHash('sha1')
      .update(Buffer.concat([Buffer.from(`blob ${content.length}\0`), content]))
      .digest('hex');
    expect(diff).toContain(id.slice(0, 7));
    expect(index?.[2]).toMatch(/^0+$/);
    expect(checked.diff).not.toContain(id.slice(0, 7));
  });

  it('a value is masked wherever the pieces are cut: in a 1 MB line, on every line, escaped', async () => {
    const secret = 'npm_4f9c1e7a2b5d8e0f3a6c';
    const escaped = [...secret].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
    const long = `${'x'.repeat(7)} ${secret} `.repeat(40_000);
    const many = Array.from({ length: 30_000 }, (_, n) => `${n} ${escaped} ${secret}`);
    const diff = [
      'diff --git a/long b/long',
      'new file mode 100644',
      'index 0000000..1111111',
      '--- /dev/null',
      '+++ b/long',
      '@@ -0,0 +1 @@',
      `+${long}`,
      'diff --git a/many b/many',
      'new file mode 100644',
      'index 0000000..2222222',
      '--- /dev/null',
      '+++ b/many',
      `@@ -0,0 +1,${many.length} @@`,
      ...many.map((l) => `+${l}`),
      '',
    ].join('\n');
    const { ctx } = context([secret]);
    const checked = await checkResultDiff(ctx, diff);
    expect(checked.secretFiles).toEqual(['long', 'many']);
    expect(checked.diff).not.toContain(secret);
    expect(checked.diff).not.toContain(escaped);
    expect(checked.diff).toContain(`+${'xxxxxxx *** '.repeat(3)}`);
    expect(checked.diff).toContain('\n+29999 *** ***\n');
    expect(checked.diff.split('\n')).toHaveLength(diff.split('\n').length);
  });

  it.each([
    ['%41 escapes', '%41'.repeat(1000)],
    ['\\u0041 escapes', '\\u0041'.repeat(600)],
  ])(
    'a large diff of %s is masked in turns of the event loop with bounded memory',
    async (_name, line) => {
      const size = 8 * 1024 * 1024;
      const lines = Math.floor(size / (line.length + 2));
      const body = `+${line}\n`.repeat(lines);
      const diff = `diff --git a/x b/x\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/x\n@@ -0,0 +1,${lines} @@\n${body}`;
      const { ctx } = context(['npm_4f9c1e7a2b5d8e0f3a6c']);
      // The process's high-water mark of resident memory (kB), before and after.
      const before = process.resourceUsage().maxRSS * 1024;
      let turns = 0;
      let running = true;
      const turn = () => {
        turns++;
        if (running) setImmediate(turn);
      };
      setImmediate(turn);
      const checked = await checkResultDiff(ctx, diff);
      running = false;
      const grown = process.resourceUsage().maxRSS * 1024 - before;
      expect(checked.secretFiles).toEqual([]);
      // The event loop ran at least once for every 256 KB of diff (the masking's pieces).
      expect(turns).toBeGreaterThan(diff.length / (256 * 1024));
      // Memory: a few times the diff at most, never one record per escape (over 20 times).
      expect(grown).toBeLessThan(6 * diff.length);
    },
    60_000,
  );
});
