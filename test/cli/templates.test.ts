/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- tests poke at JSON bodies */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';

/**
 * Templates through the real server and CLI (issue 16): `berth template create|update|show|list|
 * delete`, `extends` in `env create`, `env show --resolved`, the API's refusals (unknown template,
 * a delete while extended, a non-admin write) and the routes in /openapi.json.
 */

let server: ServeHandle;
let dir: string;
let auth: string[];

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function api(method: string, path: string, body?: unknown, token = server.adminToken) {
  const response = await fetch(server.url + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const json: any = text === '' ? undefined : JSON.parse(text);
  return { status: response.status, json };
}

beforeAll(async () => {
  server = await startServe();
  dir = tempDir('templates');
  auth = ['--url', server.url, '--token', server.adminToken];
});

afterAll(async () => {
  await server?.stop();
});

describe('berth template and extends', () => {
  it('creates, lists and shows a template; an environment extends it; show --resolved prints the merge', async () => {
    const base = file(
      'base.yaml',
      [
        'name: org-base',
        'description: CA, mirrors and allowlist of the organisation',
        'image: minimal',
        'env:',
        '  NODE_ENV: test',
        '  MIRROR: https://mirror.example.test',
        'internet:',
        '  access: allowlist',
        '  presets: [common-dependencies]',
        '  domains: [mirror.example.test]',
        '',
      ].join('\n'),
    );
    const created = await runBerth(['template', 'create', '--file', base, ...auth]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^created template org-base \(tpl_/);

    const list = await runBerth(['template', 'list', ...auth]);
    expect(list.stdout).toMatch(/org-base .*CA, mirrors and allowlist/);
    const shown = await runBerth(['template', 'show', 'org-base', ...auth]);
    expect(shown.stdout).toMatch(/image: minimal/);

    const shop = file(
      'shop.yaml',
      [
        'name: shop',
        'extends: org-base',
        'repository: https://git.example.test/acme/shop.git',
        'setup: npm install',
        'env:',
        '  NODE_ENV: production',
        'internet:',
        '  domains: [api.example.test] # access comes from the template',
        '',
      ].join('\n'),
    );
    const env = await runBerth(['env', 'create', '--file', shop, ...auth]);
    expect(env.code, env.stderr).toBe(0);

    const plain = await runBerth(['env', 'show', 'shop', ...auth]);
    expect(plain.stdout).toMatch(
      /^extends: +template org-base \(berth env show shop --resolved\)$/m,
    );

    const resolved = await runBerth(['env', 'show', 'shop', '--resolved', ...auth]);
    expect(resolved.code, resolved.stderr).toBe(0);
    const [header, ...rest] = resolved.stdout.split('\n');
    expect(header).toBe('# shop merged over template org-base');
    const spec = parseYaml(rest.join('\n')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(spec.image).toBe('minimal');
    expect(spec.env).toEqual({ NODE_ENV: 'production', MIRROR: 'https://mirror.example.test' });
    expect(spec.internet).toMatchObject({
      access: 'allowlist',
      presets: ['common-dependencies'],
      domains: ['mirror.example.test', 'api.example.test'],
    });
    expect(spec.setup.script).toBe('npm install');

    // A template change merges the environment again and says so.
    const changed = file(
      'base2.yaml',
      'name: org-base\nimage: minimal\nenv:\n  NODE_ENV: test\n  MIRROR: https://mirror2.example.test\ninternet:\n  access: allowlist\n',
    );
    const updated = await runBerth(['template', 'update', 'org-base', '--file', changed, ...auth]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toMatch(/merged again: shop \(.*template org-base changed\)/);
    const again = await api('GET', '/v1/environments/shop/resolved');
    expect(again.json.spec.env.MIRROR).toBe('https://mirror2.example.test');
    expect(again.json.spec.internet.domains).toEqual(['api.example.test']);
    expect(again.json.templates).toEqual([{ name: 'org-base', revision: 2 }]);
  });

  it('refuses an unknown template (nothing stored) and a delete while extended (with the names)', async () => {
    const orphan = file(
      'orphan.yaml',
      'name: orphan\nextends: nope\nrepository: https://git.example.test/acme/o.git\n',
    );
    const refused = await runBerth(['env', 'create', '--file', orphan, ...auth]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/extends: no template named "nope"/);
    expect((await api('GET', '/v1/environments/orphan')).status).toBe(404);

    const del = await runBerth(['template', 'delete', 'org-base', ...auth]);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(/template "org-base" is extended by environments shop/);
    const viaApi = await api('DELETE', '/v1/templates/org-base');
    expect(viaApi.status).toBe(409);
    expect(viaApi.json.details).toMatchObject({ environments: ['shop'], templates: [] });
  });

  it('takes a write from admin tokens only, and lists the routes in /openapi.json', async () => {
    const made = await api('POST', '/v1/tokens', { name: 'dev' });
    const token = made.json.token as string;
    const write = await api('POST', '/v1/templates', { spec: { name: 'mine' } }, token);
    expect(write.status).toBe(403);
    expect((await api('GET', '/v1/templates', undefined, token)).json.templates).toHaveLength(1);

    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const methods = (path: string) =>
      Object.keys(doc.paths[path] ?? {}).filter((key) => key !== 'parameters');
    expect(methods('/v1/templates')).toEqual(['get', 'post']);
    expect(methods('/v1/templates/{name}')).toEqual(['get', 'put', 'delete']);
    expect(methods('/v1/environments/{name}/resolved')).toEqual(['get']);
  });
});
