/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- tests poke at JSON bodies */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type ApiResponse, type TestServer } from './api-server.js';

/** Every refusal of issue 2's "Bad input" list, through the API: clear message, field path, nothing stored. */

const REPO = 'https://git.example/acme/app.git';

function expectError(response: ApiResponse, status: number, code: string): void {
  expect(response.status, response.text).toBe(status);
  expect(Object.keys(response.json).sort()).toEqual(['code', 'details', 'message', 'requestId']);
  expect(response.json.code).toBe(code);
  expect(response.json.requestId).toMatch(/^req_/);
  expect(response.headers.get('x-request-id')).toBe(response.json.requestId);
  expect(response.headers.get('content-type')).toMatch(/application\/json/);
}

function issue(response: ApiResponse): { path: string; message: string } {
  return response.json.details.issues[0];
}

describe('API refusals of bad input', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const create = (spec: unknown, secrets?: Record<string, string>) =>
    server.request('POST', '/v1/environments', { body: { spec, ...(secrets ? { secrets } : {}) } });

  async function expectNothingStored(): Promise<void> {
    const list = await server.request('GET', '/v1/environments');
    expect(list.json.environments.map((e: { name: string }) => e.name)).not.toContain('bad');
  }

  it('refuses a malformed JSON body', async () => {
    const response = await server.request('POST', '/v1/environments', {
      rawBody: '{"spec": {"name": "bad",',
      headers: { 'content-type': 'application/json' },
    });
    expectError(response, 400, 'invalid_input');
    expect(response.json.message).toMatch(/^the request body is not valid JSON/);
    expectError(
      await server.request('POST', '/v1/environments', { rawBody: '' }),
      400,
      'invalid_input',
    );
    await expectNothingStored();
  });

  const yaml = (method: string, path: string, text: string, type = 'application/yaml') =>
    server.request(method, path, { rawBody: text, headers: { 'content-type': type } });

  it('refuses malformed YAML with its line and column, on every environment route', async () => {
    const text = `name: bad\nrepository: [${REPO}\nsetup: npm ci\n`;
    for (const [method, path] of [
      ['POST', '/v1/environments'],
      ['POST', '/v1/environments/validate'],
      ['PUT', '/v1/environments/bad'],
    ] as const) {
      const response = await yaml(method, path, text);
      expectError(response, 400, 'invalid_environment');
      expect(response.json.message).toMatch(/^request body: \(yaml\): .*\(line \d+, column \d+\)/);
      const first = issue(response) as { path: string; line?: number; column?: number };
      expect(first.path).toBe('(yaml)');
      expect(first.line).toBeGreaterThanOrEqual(2);
      expect(first.column).toBeGreaterThan(0);
    }
    await expectNothingStored();
  });

  it('refuses a misspelled field in YAML, naming it with its line and column', async () => {
    const response = await yaml(
      'POST',
      '/v1/environments',
      `name: bad\nrepository: ${REPO}\nsetpu: npm ci\n`,
      'text/yaml; charset=utf-8',
    );
    expectError(response, 400, 'invalid_environment');
    expect(issue(response)).toEqual({
      path: 'setpu',
      message: 'unknown field "setpu"',
      line: 3,
      column: 1,
    });
    expect(response.json.message).toBe(
      'request body: setpu: unknown field "setpu" (line 3, column 1)',
    );
    await expectNothingStored();
  });

  it('creates, validates and updates an environment from a YAML body', async () => {
    const text = [
      'name: from-yaml',
      `repository: ${REPO}`,
      'setup: npm ci',
      'secrets: [NPM_TOKEN]',
      'internet:',
      '  access: allowlist',
      '  domains: [Example.COM]',
      '',
    ].join('\n');
    const validated = await yaml('POST', '/v1/environments/validate', text, 'application/x-yaml');
    expect(validated.status, validated.text).toBe(200);
    expect(validated.json.spec.internet.domains).toEqual(['Example.COM']);
    expectError(await server.request('GET', '/v1/environments/from-yaml'), 404, 'not_found');

    const created = await yaml('POST', '/v1/environments', text);
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ name: 'from-yaml', revision: 1, secrets: [] });
    expect(created.json.spec.setup).toEqual({
      script: 'npm ci',
      strict: true,
      timeoutMs: 1_800_000,
    });
    const stored = await server.request('GET', '/v1/environments/from-yaml');
    expect(stored.json.spec).toEqual(created.json.spec);

    // Secret values come with the JSON shape; a later YAML update keeps them.
    const withSecret = await server.request('PUT', '/v1/environments/from-yaml', {
      body: { spec: stored.json.spec, secrets: { NPM_TOKEN: 'v' } },
    });
    expect(withSecret.status, withSecret.text).toBe(200);
    const updated = await yaml('PUT', '/v1/environments/from-yaml', `${text}verify: npm test\n`);
    expect(updated.status, updated.text).toBe(200);
    expect(updated.json).toMatchObject({ revision: 3, secrets: ['NPM_TOKEN'] });
    expect(updated.json.spec.verify).toBe('npm test');
  });

  it('refuses a body that is not the expected object, naming the field', async () => {
    const misspelled = await server.request('POST', '/v1/environments', {
      body: { sepc: { name: 'bad', repository: REPO } },
    });
    expectError(misspelled, 400, 'invalid_input');
    expect(misspelled.json.details.issues).toEqual(
      expect.arrayContaining([
        { path: 'sepc', message: 'unknown field "sepc"' },
        { path: 'spec', message: 'required' },
      ]),
    );
    const wrongSecrets = await server.request('POST', '/v1/environments', {
      body: { spec: { name: 'bad', repository: REPO }, secrets: { TOKEN: 42 } },
    });
    expectError(wrongSecrets, 400, 'invalid_input');
    expect(issue(wrongSecrets).path).toBe('secrets.TOKEN');
    await expectNothingStored();
  });

  it('refuses unknown and misspelled environment fields with their path', async () => {
    const top = await create({ name: 'bad', repository: REPO, setpu: 'npm ci' });
    expectError(top, 400, 'invalid_environment');
    expect(issue(top)).toEqual({ path: 'setpu', message: 'unknown field "setpu"' });
    expect(top.json.message).toContain('setpu: unknown field "setpu"');

    const nested = await create({ name: 'bad', repository: REPO, internet: { acess: 'on' } });
    expectError(nested, 400, 'invalid_environment');
    expect(issue(nested)).toEqual({ path: 'internet.acess', message: 'unknown field "acess"' });
    await expectNothingStored();
  });

  it('refuses a duplicate environment name with 409 and keeps the first one unchanged', async () => {
    expect((await create({ name: 'twice', repository: REPO, env: { FIRST: '1' } })).status).toBe(
      201,
    );
    const again = await create(
      { name: 'twice', repository: REPO, env: { SECOND: '1' } },
      { S: 'value' },
    );
    expectError(again, 409, 'conflict');
    expect(again.json.message).toBe('an environment named "twice" already exists');
    const stored = await server.request('GET', '/v1/environments/twice');
    expect(stored.json.spec.env).toEqual({ FIRST: '1' });
    expect(stored.json.secrets).toEqual([]);
    expect(stored.json.revision).toBe(1);
  });

  it.each([
    ['*.', 0],
    ['exa mple.com', 0],
    ['*evil.com', 0],
    ['127.0.0.1', 0],
    ['[::1]', 0],
  ])('refuses the domain pattern %j', async (pattern) => {
    const response = await create({
      name: 'bad',
      repository: REPO,
      internet: { access: 'allowlist', domains: ['ok.example', pattern] },
    });
    expectError(response, 400, 'invalid_environment');
    expect(issue(response).path).toBe('internet.domains[1]');
    expect(issue(response).message.length).toBeGreaterThan(5);
    await expectNothingStored();
  });

  it.each(['10.0.0.1', '127.0.0.1', '[::1]', '::1', 'fe80::1', '*.[::1]'])(
    'names why the IP literal %j is refused',
    async (literal) => {
      const response = await create({
        name: 'bad',
        repository: REPO,
        internet: { access: 'allowlist', domains: [literal] },
      });
      expectError(response, 400, 'invalid_environment');
      expect(issue(response).path).toBe('internet.domains[0]');
      expect(issue(response).message).toMatch(/IP literal/);
      await expectNothingStored();
    },
  );

  it('refuses an HTTP method that does not exist', async () => {
    const response = await create({
      name: 'bad',
      repository: REPO,
      internet: { access: 'allowlist', domains: ['ok.example'], methods: ['GET', 'FETCH'] },
    });
    expectError(response, 400, 'invalid_environment');
    expect(issue(response).path).toBe('internet.methods[1]');
    expect(issue(response).message).toMatch(/not an HTTP method/);
    await expectNothingStored();
  });

  it('refuses a script over the size limit', async () => {
    const response = await create({
      name: 'bad',
      repository: REPO,
      setup: 'x'.repeat(64 * 1024 + 1),
    });
    expectError(response, 400, 'invalid_environment');
    expect(issue(response).path).toBe('setup');
    expect(issue(response).message).toMatch(/at most 65536 bytes/);
    const nested = await create({
      name: 'bad',
      repository: REPO,
      maintenance: { script: 'y'.repeat(64 * 1024 + 1) },
    });
    expect(issue(nested).path).toBe('maintenance.script');
    await expectNothingStored();
  });

  it('refuses an empty repository URL', async () => {
    const response = await create({ name: 'bad', repository: '' });
    expectError(response, 400, 'invalid_environment');
    expect(issue(response)).toEqual({ path: 'repository', message: 'the repository URL is empty' });
    const object = await create({ name: 'bad', repository: { url: '   ' } });
    expect(issue(object).path).toBe('repository.url');
    await expectNothingStored();
  });

  it('refuses a repository URL that git would take as an option', async () => {
    const response = await create({ name: 'bad', repository: '--upload-pack=touch /tmp/pwned' });
    expectError(response, 400, 'invalid_environment');
    expect(issue(response).path).toBe('repository');
    expect(issue(response).message).toMatch(/would be read as a git option/);
    const branch = await create({
      name: 'bad',
      repository: { url: REPO, defaultBranch: '--orphan' },
    });
    expect(issue(branch).path).toBe('repository.defaultBranch');
    await expectNothingStored();
  });

  it('refuses a local-path repository when the server does not allow them, saying how to allow it', async () => {
    for (const url of ['/srv/git/app', 'file:///srv/git/app']) {
      const response = await create({ name: 'bad', repository: url });
      expectError(response, 400, 'invalid_environment');
      expect(issue(response).path).toBe('repository.url');
      expect(response.json.message).toContain('--allow-local-repos');
      expect(response.json.message).toContain('BERTH_ALLOW_LOCAL_REPOS=1');
    }
    const validate = await server.request('POST', '/v1/environments/validate', {
      body: { spec: { name: 'bad', repository: '/srv/git/app' } },
    });
    expectError(validate, 400, 'invalid_environment');
    await expectNothingStored();
  });

  it('accepts a local-path repository on a server that allows them', async () => {
    const permissive = await startTestServer({ allowLocalRepositories: true });
    try {
      const response = await permissive.request('POST', '/v1/environments', {
        body: { spec: { name: 'local', repository: '/srv/git/app' } },
      });
      expect(response.status, response.text).toBe(201);
      expect(response.json.spec.repository).toEqual({ url: '/srv/git/app', defaultBranch: 'main' });
    } finally {
      await permissive.close();
    }
  });

  it('refuses bad secret values and undeclared-name clashes, storing nothing', async () => {
    const empty = await create({ name: 'bad', repository: REPO }, { TOKEN: '' });
    expectError(empty, 400, 'invalid_input');
    expect(issue(empty)).toEqual({
      path: 'secrets.TOKEN',
      message: 'a secret value may not be empty',
    });
    const huge = await create(
      { name: 'bad', repository: REPO },
      { TOKEN: 'z'.repeat(64 * 1024 + 1) },
    );
    expect(issue(huge).path).toBe('secrets.TOKEN');
    const badName = await create({ name: 'bad', repository: REPO }, { 'NOT-A-NAME': 'v' });
    expect(issue(badName).path).toBe('secrets.NOT-A-NAME');
    const clash = await create(
      { name: 'bad', repository: REPO, env: { TOKEN: 'x' } },
      { TOKEN: 'v' },
    );
    expectError(clash, 400, 'invalid_environment');
    expect(clash.json.message).toMatch(/both a variable and a secret/);
    await expectNothingStored();
  });

  it('refuses a rename through PUT and an unknown secret to remove, changing nothing', async () => {
    expect((await create({ name: 'stay', repository: REPO }, { KEEP: 'v1' })).status).toBe(201);
    const rename = await server.request('PUT', '/v1/environments/stay', {
      body: { spec: { name: 'moved', repository: REPO } },
    });
    expectError(rename, 400, 'invalid_input');
    expect(rename.json.message).toMatch(/cannot be renamed/);
    const remove = await server.request('PUT', '/v1/environments/stay', {
      body: { spec: { name: 'stay', repository: REPO, env: { A: '1' } }, removeSecrets: ['NOPE'] },
    });
    expectError(remove, 400, 'invalid_input');
    expect(issue(remove)).toEqual({
      path: 'removeSecrets[0]',
      message: 'no secret named "NOPE" is set',
    });
    const stored = await server.request('GET', '/v1/environments/stay');
    expect(stored.json).toMatchObject({ revision: 1, secrets: ['KEEP'] });
    expect(stored.json.spec.env).toEqual({});
    expectError(await server.request('GET', '/v1/environments/moved'), 404, 'not_found');
  });

  it('refuses a body over 1 MiB with 413', async () => {
    const big = JSON.stringify({
      spec: { name: 'bad', repository: REPO, description: 'd'.repeat(1024 * 1024) },
    });
    const response = await server.request('POST', '/v1/environments', {
      rawBody: big,
      headers: { 'content-type': 'application/json' },
    });
    expectError(response, 413, 'payload_too_large');
    // Streamed without a length: still refused once the limit is passed.
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 20) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const streamed = await fetch(`${server.url}/v1/environments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    });
    expect(streamed.status).toBe(413);
    expect(((await streamed.json()) as { code: string }).code).toBe('payload_too_large');
    await expectNothingStored();
  });

  it('answers an unknown environment with the same 404 on the environment, cache and task routes', async () => {
    for (const response of [
      await server.request('GET', '/v1/environments/nope'),
      await server.request('PUT', '/v1/environments/nope', {
        body: { spec: { name: 'nope', repository: REPO } },
      }),
      await server.request('DELETE', '/v1/environments/nope'),
      await server.request('GET', '/v1/environments/nope/cache'),
      await server.request('DELETE', '/v1/environments/nope/cache'),
      await server.request('GET', '/v1/tasks?environment=nope'),
      await server.request('POST', '/v1/tasks', {
        body: { environment: 'nope', command: 'true' },
      }),
    ]) {
      expectError(response, 404, 'not_found');
      expect(response.json.message).toBe('environment "nope" not found');
      expect(response.json.details).toEqual({ name: 'nope' });
    }
  });

  it('answers an unknown route with a 404 in the error shape', async () => {
    const response = await server.request('GET', '/v1/nothing-here');
    expectError(response, 404, 'not_found');
    expect(response.json.message).toBe('no route GET /v1/nothing-here');
    expectError(
      await server.request('PATCH', '/v1/environments/x', { body: {} }),
      404,
      'not_found',
    );
  });

  it('validates without storing and returns the normalised spec', async () => {
    const response = await server.request('POST', '/v1/environments/validate', {
      body: {
        spec: {
          name: 'check',
          repository: REPO,
          internet: { access: 'allowlist', domains: ['Example.COM'], methods: ['get'] },
        },
      },
    });
    expect(response.status, response.text).toBe(200);
    expect(response.json.valid).toBe(true);
    expect(response.json.spec.internet.methods).toEqual(['GET']);
    expect(response.json.spec.repository).toEqual({ url: REPO, defaultBranch: 'main' });
    expectError(await server.request('GET', '/v1/environments/check'), 404, 'not_found');
  });
});
