import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { templateSpecSchema } from '../../src/domain/environment/environment-template.js';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';

/**
 * Issue 20 ("the first hour"), items 8, 11 and 12, through the built CLI as a person types it,
 * against a real `berth serve` (no Docker needed).
 */

let server: ServeHandle;
let dir: string;
let auth: string[];

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const base = (name: string) =>
  `name: ${name}\nrepository: https://git.example.test/acme/${name}.git\n`;

beforeAll(async () => {
  server = await startServe(['--allow-local-repos']);
  dir = tempDir('first-hour');
  auth = ['--url', server.url, '--token', server.adminToken];
});

afterAll(async () => {
  await server?.stop();
});

describe('settings that do nothing are refused (item 8)', () => {
  it('refuses presets, domains and methods without access: allowlist, with the field path and the fix', async () => {
    const off = file(
      'off.yaml',
      `${base('off')}internet:\n  domains: [api.example.test]\n  methods: [GET]\n`,
    );
    for (const args of [
      ['env', 'validate', '--file', off],
      ['env', 'create', '--file', off, ...auth],
    ]) {
      const r = await runBerth(args);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toContain('internet.domains: does nothing while internet.access is off');
      expect(r.stderr).toContain('internet.methods: does nothing while internet.access is off');
      expect(r.stderr).toContain('add "access: allowlist"');
    }
    const on = file(
      'on.yaml',
      `${base('on')}internet:\n  access: on\n  presets: [common-dependencies]\n  methods: [GET]\n`,
    );
    const r = await runBerth(['env', 'create', '--file', on, ...auth]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'internet.presets: does nothing with access: on (every host is allowed already): use "access: allowlist"',
    );
    // methods do limit access: on, so they are not what is refused.
    expect(r.stderr).not.toContain('internet.methods');
    const allow = file(
      'allow.yaml',
      `${base('allow')}internet:\n  access: allowlist\n  presets: [common-dependencies]\n  domains: [api.example.test]\n  methods: [GET]\n`,
    );
    const ok = await runBerth(['env', 'create', '--file', allow, ...auth]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('env show shows every stored field: description, verify, scripts with their true line counts', async () => {
    const f = file(
      'shown.yaml',
      `${base('shown')}description: the payments service
setup: |
  npm install
  npm run build
maintenance:
  script: npm install
  strict: false
  timeoutMs: 600000
verify: npm test
internet:
  access: allowlist
  domains: [api.example.test]
  tunnelOnly: [api.example.test]
services:
  - name: db
    command: pg_ctlcluster 15 main start
    ready: { port: 5432 }
resources:
  diskMb: 5000
model: small-model
`,
    );
    const created = await runBerth(['env', 'create', '--file', f, ...auth]);
    expect(created.code, created.stderr).toBe(0);
    const show = await runBerth(['env', 'show', 'shown', ...auth]);
    expect(show.code, show.stderr).toBe(0);
    const lines = show.stdout.split('\n');
    const line = (field: string) => lines.find((l) => l.startsWith(`${field}:`)) ?? '';
    expect(line('description')).toContain('the payments service');
    expect(line('setup')).toContain('2 lines, time limit 30 min');
    expect(line('maintenance')).toContain('1 line, time limit 10 min, not strict');
    expect(line('verify')).toContain('npm test');
    expect(line('internet')).toContain('allowlist (api.example.test)');
    expect(line('internet')).toContain('never intercepted api.example.test');
    expect(line('services')).toContain('db (pg_ctlcluster 15 main start; ready: port 5432)');
    expect(line('resources')).toContain('5000 MB disk');
    expect(line('model')).toContain('small-model');
  });
});

describe('members (item 11)', () => {
  async function token(name: string): Promise<string> {
    const r = await runBerth(['token', 'create', name, '--json', ...auth]);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { token: string }).token;
  }
  const as = (value: string, ...args: string[]) =>
    runBerth([...args, '--url', server.url, '--token', value]);

  it('a member sees, follows and cancels the tasks of others and resets the cache; a non-member sees nothing; token list says admins only', async () => {
    const alice = await token('alice');
    const bob = await token('bob');
    const carol = await token('carol');
    // A local repository and an image that does not exist: the attempt fails at once, no engine
    // work and no network.
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    execFileSync('git', [
      '-C',
      repo,
      '-c',
      'user.name=t',
      '-c',
      'user.email=t@t',
      'commit',
      '-q',
      '--allow-empty',
      '-m',
      'x',
    ]);
    const f = file(
      'shared.yaml',
      `name: shared\nrepository: ${repo}\nimage: berth-no-such-image\nmembers: [alice, bob]\n`,
    );
    expect((await runBerth(['env', 'create', '--file', f, ...auth])).code).toBe(0);
    const submitted = await as(bob, 'exec', '--env', 'shared', '--command', 'true', '--json');
    expect(submitted.code, submitted.stderr).toBe(0);
    const taskId = (JSON.parse(submitted.stdout) as { id: string }).id;

    // alice, another member: the same rights on bob's task as bob.
    const list = await as(alice, 'task', 'list', '--env', 'shared', '--json');
    expect(list.stdout).toContain(taskId);
    for (const args of [
      ['task', 'show', taskId],
      ['task', 'logs', taskId],
      ['task', 'cancel', taskId],
      ['env', 'cache', 'show', 'shared'],
      ['env', 'cache', 'reset', 'shared'],
    ]) {
      const r = await as(alice, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }

    // carol, not a member: the environment and its tasks do not exist for her.
    const none = await as(carol, 'task', 'list', '--json');
    expect(none.stdout).not.toContain(taskId);
    for (const args of [
      ['task', 'show', taskId],
      ['task', 'logs', taskId],
      ['task', 'diff', taskId],
      ['task', 'cancel', taskId],
      ['task', 'followup', taskId, '--command', 'true'],
      ['env', 'show', 'shared'],
      ['env', 'cache', 'show', 'shared'],
      ['env', 'cache', 'reset', 'shared'],
      ['exec', '--env', 'shared', '--command', 'true'],
    ]) {
      const r = await as(carol, ...args, '--json');
      expect(r.code, args.join(' ')).toBe(1);
      expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code, args.join(' ')).toBe(
        'not_found',
      );
    }

    // Tokens are for admins: said so, and not as bad input (exit code 1, not 2).
    for (const args of [
      ['token', 'list'],
      ['token', 'create', 'dave'],
      ['token', 'revoke', 'bob'],
    ]) {
      const r = await as(alice, ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toContain('admins only');
    }
  });
});

describe('clearer messages (item 12)', () => {
  it('--attempts refusals name the allowed range; a duplicate environment name suggests env update', async () => {
    const f = file('dup.yaml', base('dup'));
    expect((await runBerth(['env', 'create', '--file', f, ...auth])).code).toBe(0);
    const again = await runBerth(['env', 'create', '--file', f, ...auth]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(
      `an environment named "dup" already exists; to change it: berth env update dup --file ${f}`,
    );
    for (const n of ['0', '9', '1000']) {
      const r = await runBerth([
        'exec',
        '--env',
        'dup',
        '--command',
        'true',
        '--attempts',
        n,
        ...auth,
      ]);
      expect(r.code, n).toBe(2);
      expect(r.stderr).toContain(`attempts must be a whole number from 1 to 8 (got ${n}`);
    }
    const words = await runBerth([
      'exec',
      '--env',
      'dup',
      '--command',
      'true',
      '--attempts',
      'two',
      ...auth,
    ]);
    expect(words.code).toBe(2);
    expect(words.stderr).toContain(
      "--attempts must be a whole number from 1 to the server's cap (BERTH_MAX_ATTEMPTS",
    );
    // berth run knows the cap itself.
    const run = await runBerth(['run', '--env-file', f, '--command', 'true', '--attempts', '9'], {
      BERTH_CONFIG_DIR: join(dir, 'config'),
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      '--attempts must be a whole number from 1 to 8 (BERTH_MAX_ATTEMPTS)',
    );
  });
});

describe('the docs’ environment examples are valid as written (items 8 and 12)', () => {
  it('every YAML example in docs/ and the README passes berth env validate', async () => {
    const root = join(import.meta.dirname, '../..');
    const docs = [
      'README.md',
      ...readdirSync(join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
    ];
    let checked = 0;
    for (const doc of docs) {
      const text = readFileSync(join(root, doc), 'utf8');
      for (const [n, match] of [...text.matchAll(/```ya?ml\n([\s\S]*?)```/g)].entries()) {
        const block = match[1] ?? '';
        // Files of other kinds the docs show (a GitHub workflow or action, Slack's app manifest,
        // Prometheus' scrape configuration and alert rules).
        if (
          /^(on|jobs|runs|display_information|oauth_config|settings|scrape_configs|groups):/m.test(
            block,
          )
        )
          continue;
        // A template file (berth template create --file) is checked against the template schema.
        if (/berth template (create|update)/.test(block)) {
          const parsed = templateSpecSchema.safeParse(parseYaml(block));
          expect(parsed.success, `${doc} example ${n + 1}: ${parsed.error?.message}`).toBe(true);
          checked++;
          continue;
        }
        // A fragment of top-level fields (internet:, repository:) gets the two required ones.
        const whole = /^name:/m.test(block)
          ? block
          : `name: example\n${/^repository:/m.test(block) ? '' : 'repository: https://git.example.test/acme/example.git\n'}${block}`;
        const f = file(`${doc.replace(/\W/g, '-')}-${n}.yaml`, whole);
        const r = await runBerth(['env', 'validate', '--file', f]);
        expect(r.code, `${doc} example ${n + 1}: ${r.stderr}`).toBe(0);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(3);
  });
});
