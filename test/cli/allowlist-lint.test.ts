import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';

/** Issue 19 item 4 in the CLI: `env validate` and `env create` refuse and warn as the schema says. */

let server: ServeHandle;
let dir: string;

const envYaml = (name: string, domains: string[]) =>
  `name: ${name}\nrepository: https://git.example.test/acme/${name}.git\ninternet:\n  access: allowlist\n  domains:\n${domains.map((d) => `    - '${d}'\n`).join('')}`;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  server = await startServe();
  dir = tempDir('lint');
});

afterAll(async () => {
  await server?.stop();
});

describe('berth env: allowlist lint', () => {
  it('env validate refuses a wildcard over a public suffix with the field path, line and why', async () => {
    const r = await runBerth([
      'env',
      'validate',
      '--file',
      file('bad.yaml', envYaml('bad', ['api.example.test', '*.s3.amazonaws.com'])),
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(
      /internet\.domains\[1\]: "\*\.s3\.amazonaws\.com" is a wildcard over a public suffix.*\(line 7, column \d+\)/,
    );
  });

  it('env validate and env create print warnings on stderr and still succeed', async () => {
    const f = file('warned.yaml', envYaml('warned', ['raw.githubusercontent.com', 'dns.google']));
    const validated = await runBerth(['env', 'validate', '--file', f]);
    expect(validated.code, validated.stderr).toBe(0);
    expect(validated.stdout).toMatch(/valid environment "warned"/);
    const lines = validated.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^warning: .*warned\.yaml: internet\.domains\[0\]: .*raw\.githubusercontent\.com.*anybody's content/,
    );
    expect(lines[1]).toMatch(/internet\.domains\[1\]: .*DNS-over-HTTPS/);

    const json = await runBerth(['env', 'validate', '--file', f, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      valid: true,
      warnings: [{ path: 'internet.domains[0]' }, { path: 'internet.domains[1]' }],
    });

    const auth = ['--url', server.url, '--token', server.adminToken];
    const created = await runBerth(['env', 'create', '--file', f, ...auth]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/created environment warned/);
    expect(created.stderr).toMatch(/warning: .*internet\.domains\[0\]: .*anybody's content/);
    expect(created.stderr).toMatch(/warning: .*internet\.domains\[1\]: .*DNS-over-HTTPS/);
  });
});
