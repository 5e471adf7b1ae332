import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';

const SECRET = 'sk-live-9f3a7c21-berth-cli-canary';

let server: ServeHandle;
let dir: string;
let auth: string[];

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const envYaml = (name: string, extra = '') =>
  `name: ${name}\nrepository: https://git.example.test/acme/${name}.git\nsecrets: [NPM_TOKEN]\n${extra}`;

beforeAll(async () => {
  server = await startServe();
  dir = tempDir('cli');
  auth = ['--url', server.url, '--token', server.adminToken];
});

afterAll(async () => {
  await server?.stop();
});

describe('berth CLI against a real server', () => {
  it('prints the admin token once, on the first start only', () => {
    expect(server.adminToken).toMatch(/^berth_/);
  });

  it('creates, lists, shows, updates and deletes an environment; secrets show names only', async () => {
    const f = file('pay.yaml', envYaml('pay'));
    const created = await runBerth([
      'env',
      'create',
      '--file',
      f,
      '--secret',
      `NPM_TOKEN=${SECRET}`,
      '--json',
      ...auth,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const view = JSON.parse(created.stdout) as { id: string; secrets: string[] };
    expect(view.id).toMatch(/^env_/);
    expect(view.secrets).toEqual(['NPM_TOKEN']);

    const list = await runBerth(['env', 'list', ...auth]);
    expect(list.stdout).toContain('pay');
    const show = await runBerth(['env', 'show', 'pay', ...auth]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('NPM_TOKEN');
    const showJson = await runBerth(['env', 'show', 'pay', '--json', ...auth]);
    for (const out of [created, list, show, showJson]) {
      expect(out.stdout + out.stderr).not.toContain(SECRET);
    }

    const f2 = file('pay2.yaml', envYaml('pay', 'env: { NODE_ENV: test }\n'));
    const updated = await runBerth(['env', 'update', 'pay', '--file', f2, '--json', ...auth]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(
      (JSON.parse(updated.stdout) as { revision: number; spec: { env: object } }).spec.env,
    ).toEqual({ NODE_ENV: 'test' });

    const deleted = await runBerth(['env', 'delete', 'pay', ...auth]);
    expect(deleted.code).toBe(0);
    const gone = await runBerth(['env', 'show', 'pay', ...auth]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^berth: .*pay/);
  });

  it('takes a secret from a variable with --secret-from-env', async () => {
    const f = file('fromenv.yaml', envYaml('fromenv'));
    const r = await runBerth(
      ['env', 'create', '--file', f, '--secret-from-env', 'NPM_TOKEN', ...auth],
      { NPM_TOKEN: SECRET },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    const missing = await runBerth([
      'env',
      'create',
      '--file',
      f,
      '--secret-from-env',
      'NOPE_NOT_SET',
      ...auth,
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('NOPE_NOT_SET');
  });

  it.each([
    ['malformed YAML', 'name: a\nrepository: [oops\n', /line \d+, column \d+/],
    [
      'a misspelled field',
      'name: a\nrepository: https://x.test/r.git\nsetpu: x\n',
      /unknown field "setpu"/,
    ],
    [
      'a bad domain pattern',
      'name: a\nrepository: https://x.test/r.git\ninternet: { access: allowlist, domains: ["*evil.com"] }\n',
      /internet\.domains\[0\]/,
    ],
    [
      'the pattern "*."',
      'name: a\nrepository: https://x.test/r.git\ninternet: { access: allowlist, domains: ["*."] }\n',
      /internet\.domains\[0\]/,
    ],
    [
      'a pattern with a space',
      'name: a\nrepository: https://x.test/r.git\ninternet: { access: allowlist, domains: ["exa mple.com"] }\n',
      /internet\.domains\[0\]/,
    ],
    [
      'an IP literal',
      'name: a\nrepository: https://x.test/r.git\ninternet: { access: allowlist, domains: ["10.1.2.3"] }\n',
      /IP literal/,
    ],
    [
      'an IPv6 literal',
      'name: a\nrepository: https://x.test/r.git\ninternet: { access: allowlist, domains: ["ok.example", "[::1]", "fe80::1"] }\n',
      /internet\.domains\[1\]: "\[::1\]": IP literals are not allowed/,
    ],
    [
      'an unknown method',
      'name: a\nrepository: https://x.test/r.git\ninternet: { access: allowlist, methods: [BREW] }\n',
      /internet\.methods\[0\]/,
    ],
    [
      'an option as repository',
      'name: a\nrepository: "--upload-pack=touch /tmp/x"\n',
      /git option/,
    ],
    ['an empty repository', 'name: a\nrepository: ""\n', /empty/],
    [
      'an oversized script',
      `name: a\nrepository: https://x.test/r.git\nsetup: "${'x'.repeat(70_000)}"\n`,
      /at most 65536 bytes/,
    ],
  ])(
    'refuses %s with one line and exit code 2 (validate and create)',
    async (_label, text, message) => {
      const f = file(`bad-${Math.random()}.yaml`, text);
      for (const args of [
        ['env', 'validate', '--file', f],
        ['env', 'create', '--file', f, ...auth],
      ]) {
        const r = await runBerth(args);
        expect(r.code).toBe(2);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(message);
      }
    },
  );

  it('refuses a duplicate name with exit code 2', async () => {
    const f = file('dup.yaml', envYaml('dup'));
    expect(
      (await runBerth(['env', 'create', '-f', f, '--secret', 'NPM_TOKEN=x', ...auth])).code,
    ).toBe(0);
    const again = await runBerth([
      'env',
      'create',
      '-f',
      f,
      '--secret',
      'NPM_TOKEN=x',
      '--json',
      ...auth,
    ]);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stdout)).toMatchObject({ error: { code: 'conflict' } });
    // A refused create with another spec and another secret changes nothing stored.
    const other = file('dup-other.yaml', envYaml('dup', 'env: { SECOND: "1" }\n'));
    const refused = await runBerth([
      'env',
      'create',
      '-f',
      other,
      '--secret',
      'NPM_TOKEN=y',
      '--secret',
      'EXTRA=z',
      ...auth,
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      `berth: an environment named "dup" already exists; to change it: berth env update dup --file ${other} (or give this one another name)\n`,
    );
    const shown = await runBerth(['env', 'show', 'dup', '--json', ...auth]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      revision: 1,
      secrets: ['NPM_TOKEN'],
      spec: { env: {}, secrets: ['NPM_TOKEN'] },
    });
    const listed = await runBerth(['env', 'list', '--json', ...auth]);
    const names = (
      JSON.parse(listed.stdout) as { environments: Array<{ name: string }> }
    ).environments.map((e) => e.name);
    expect(names.filter((n) => n === 'dup')).toHaveLength(1);
  });

  it('refuses a local path unless the server allows local repositories', async () => {
    const f = file('local.yaml', 'name: local\nrepository: /srv/repos/local\n');
    const r = await runBerth(['env', 'create', '-f', f, ...auth]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/local/i);
    expect(r.stderr).toMatch(/allow-local-repos|BERTH_ALLOW_LOCAL_REPOS/);
  });

  it('refuses an unknown token (401) and hides environments from non-members (404)', async () => {
    const bad = await runBerth([
      'env',
      'list',
      '--url',
      server.url,
      '--token',
      'berth_not-a-real-token',
      '--json',
    ]);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: { code: 'unauthorized' } });

    const made = await runBerth(['token', 'create', 'mallory', '--json', ...auth]);
    expect(made.code, made.stderr).toBe(0);
    const mallory = (JSON.parse(made.stdout) as { token: string }).token;
    const f = file('private.yaml', envYaml('private'));
    expect(
      (await runBerth(['env', 'create', '-f', f, '--secret', 'NPM_TOKEN=x', ...auth])).code,
    ).toBe(0);
    const hidden = await runBerth([
      'env',
      'show',
      'private',
      '--json',
      '--url',
      server.url,
      '--token',
      mallory,
    ]);
    const missing = await runBerth([
      'env',
      'show',
      'no-such-env',
      '--json',
      '--url',
      server.url,
      '--token',
      mallory,
    ]);
    expect(hidden.code).toBe(1);
    expect((JSON.parse(hidden.stdout) as { error: { code: string } }).error.code).toBe('not_found');
    // The refusal does not reveal that the environment exists.
    expect(hidden.stderr.replace('private', 'X')).toBe(missing.stderr.replace('no-such-env', 'X'));
    const list = await runBerth(['env', 'list', '--json', '--url', server.url, '--token', mallory]);
    expect((JSON.parse(list.stdout) as { environments: unknown[] }).environments).toEqual([]);

    const member = file('shared.yaml', envYaml('shared', 'members: [mallory]\n'));
    expect(
      (await runBerth(['env', 'create', '-f', member, '--secret', 'NPM_TOKEN=x', ...auth])).code,
    ).toBe(0);
    const visible = await runBerth([
      'env',
      'show',
      'shared',
      '--url',
      server.url,
      '--token',
      mallory,
    ]);
    expect(visible.code, visible.stderr).toBe(0);
    const forbidden = await runBerth([
      'token',
      'list',
      '--json',
      '--url',
      server.url,
      '--token',
      mallory,
    ]);
    expect((JSON.parse(forbidden.stdout) as { error: { code: string } }).error.code).toBe(
      'forbidden',
    );

    expect((await runBerth(['token', 'revoke', 'mallory', ...auth])).code).toBe(0);
    const revoked = await runBerth([
      'env',
      'list',
      '--json',
      '--url',
      server.url,
      '--token',
      mallory,
    ]);
    expect((JSON.parse(revoked.stdout) as { error: { code: string } }).error.code).toBe(
      'unauthorized',
    );
  });

  it('lists tokens without values or hashes', async () => {
    const r = await runBerth(['token', 'list', '--json', ...auth]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(server.adminToken);
    const tokens = (JSON.parse(r.stdout) as { tokens: Array<Record<string, unknown>> }).tokens;
    expect(tokens.length).toBeGreaterThan(0);
    for (const t of tokens)
      expect(Object.keys(t).sort()).toEqual([
        'admin',
        'createdAt',
        'id',
        'lastUsedAt',
        'name',
        'revokedAt',
      ]);
  });

  it('logs in, then takes URL and token from the login file, then from the variables', async () => {
    const configDir = join(dir, 'login-config');
    const env = { BERTH_CONFIG_DIR: configDir };
    const login = await runBerth(['login', '--url', server.url, '--token', server.adminToken], env);
    expect(login.code, login.stderr).toBe(0);
    expect(statSync(join(configDir, 'login.json')).mode & 0o777).toBe(0o600);
    expect((await runBerth(['env', 'list'], env)).code).toBe(0);
    const viaVars = await runBerth(['env', 'list'], {
      BERTH_URL: server.url,
      BERTH_TOKEN: 'berth_wrong',
      BERTH_CONFIG_DIR: configDir,
    });
    expect(viaVars.code).toBe(2); // the variable wins over the login file
    const noLogin = await runBerth(['env', 'list'], {
      BERTH_CONFIG_DIR: join(dir, 'empty-config'),
    });
    expect(noLogin.code).toBe(2);
    expect(noLogin.stderr).toMatch(/berth login/);
  });

  it('takes --url and --token over BERTH_URL and BERTH_TOKEN', async () => {
    const wrongVars = { BERTH_URL: 'http://127.0.0.1:9', BERTH_TOKEN: 'berth_wrong' };
    const flags = await runBerth(['env', 'list', '--json', ...auth], wrongVars);
    expect(flags.code, flags.stderr).toBe(0);
    expect(JSON.parse(flags.stdout)).toHaveProperty('environments');
    // And each flag alone: the other value comes from its variable.
    const urlFlag = await runBerth(['env', 'list', '--url', server.url], {
      BERTH_URL: 'http://127.0.0.1:9',
      BERTH_TOKEN: server.adminToken,
    });
    expect(urlFlag.code, urlFlag.stderr).toBe(0);
    const tokenFlag = await runBerth(['env', 'list', '--token', 'berth_wrong', '--json'], {
      BERTH_URL: server.url,
      BERTH_TOKEN: server.adminToken,
    });
    expect(tokenFlag.code).toBe(2);
    expect(JSON.parse(tokenFlag.stdout)).toMatchObject({ error: { code: 'unauthorized' } });
  });

  it.each([['not-a-url'], ['127.0.0.1:8420'], ['ftp://127.0.0.1/']])(
    'refuses the server URL %j as bad input (exit 2), not as an unreachable server',
    async (url) => {
      const r = await runBerth(['env', 'list', '--url', url, '--token', 'x', '--json']);
      expect(r.code).toBe(2);
      expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'invalid_input' } });
      const plain = await runBerth(['env', 'list', '--token', 'x'], { BERTH_URL: url });
      expect(plain.code).toBe(2);
      expect(plain.stderr).toBe(
        `berth: the server URL ${JSON.stringify(url)} is not an http:// or https:// URL (for example http://127.0.0.1:8420)\n`,
      );
      const login = await runBerth(['login', '--url', url, '--token', 'x'], {
        BERTH_CONFIG_DIR: join(dir, 'bad-url-config'),
      });
      expect(login.code).toBe(2);
      expect(login.stderr).toMatch(/not an http:\/\/ or https:\/\/ URL/);
    },
  );

  it('validates the full example of docs/environments.md', async () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/environments.md'), 'utf8');
    const example = /## A full example\s+```yaml\n([\s\S]*?)\n```/.exec(doc)?.[1];
    expect(example, 'the yaml block under "## A full example"').toBeDefined();
    const f = file('full-example.yaml', `${example ?? ''}\n`);
    const r = await runBerth(['env', 'validate', '--file', f, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { spec } = JSON.parse(r.stdout) as { spec: Record<string, unknown> };
    // Every top-level field the example shows is one the schema knows and keeps.
    const shown = [...(example ?? '').matchAll(/^([a-zA-Z]+):/gm)].map((m) => m[1]);
    expect(shown.length).toBeGreaterThanOrEqual(15);
    for (const field of shown) expect(spec, `field ${field}`).toHaveProperty(field ?? '');
  });

  it('says clearly when no server answers', async () => {
    const r = await runBerth(['env', 'list', '--url', 'http://127.0.0.1:9', '--token', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the Berth server/);
  });

  it('never writes a secret value to the log or in plaintext to the database files', async () => {
    const f = file('leak.yaml', envYaml('leak'));
    expect(
      (await runBerth(['env', 'create', '-f', f, '--secret', `NPM_TOKEN=${SECRET}`, ...auth])).code,
    ).toBe(0);
    await runBerth(['env', 'show', 'leak', '--json', ...auth]);
    expect(server.logLines.length).toBeGreaterThan(0);
    expect(server.logLines.join('\n')).not.toContain(SECRET);
    for (const name of readdirSync(server.dataDir)) {
      if (!name.startsWith('berth.db')) continue;
      const bytes = readFileSync(join(server.dataDir, name));
      expect(bytes.includes(Buffer.from(SECRET))).toBe(false);
      expect(bytes.includes(Buffer.from(Buffer.from(SECRET).toString('base64')))).toBe(false);
    }
  });
});
