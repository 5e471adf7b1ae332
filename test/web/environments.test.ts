import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/** Environments and tokens in the web UI, in a real browser, against a real server. */

const REPO = 'https://git.example.test/acme/app.git';

const yamlWith = (domain: string) => `name: web-env
repository: ${REPO}
image: minimal
secrets:
  - NPM_TOKEN
internet:
  access: allowlist
  domains:
    - api.example.test
    - '${domain}'
`;

describe('web UI: environments and tokens', () => {
  let server: TestServer;
  let browser: TestBrowser;
  beforeAll(async () => {
    server = await startTestServer();
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('creates an environment from YAML; a bad domain is flagged at its field before saving', async () => {
    const { page } = browser;
    await signIn(page, server.url, server.adminToken, '/environments/new');
    await page.getByRole('heading', { name: 'New environment' }).waitFor();
    const editor = page.getByLabel('Environment file (YAML)');
    await editor.fill(yamlWith('exa mple.test'));
    const errors = page.getByRole('list', { name: 'Errors' });
    await errors.waitFor();
    expect(await errors.textContent()).toContain('internet.domains');
    const save = page.getByRole('button', { name: 'Save' });
    expect(await save.isDisabled()).toBe(true);
    await browser.screenshots('environment-new-error');
    // Nothing was stored while the file had errors.
    expect((await server.request('GET', '/v1/environments')).json).toEqual({ environments: [] });

    await editor.fill(yamlWith('*.cdn.example.test'));
    await page.getByText('Valid.').waitFor();
    await save.click();
    await page.waitForURL(`${server.url}/environments/web-env`);
    await page.getByRole('heading', { name: 'Environment web-env' }).waitFor();
    const stored = await server.request('GET', '/v1/environments/web-env');
    expect(stored.status).toBe(200);
    expect(
      (stored.json as { spec: { internet: { domains: string[] } } }).spec.internet.domains,
    ).toEqual(['api.example.test', '*.cdn.example.test']);
  });

  it('creates an environment from the form; a bad domain shows at its field as you type', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/environments/new`);
    await page.getByRole('button', { name: 'Form' }).click();
    await page.getByLabel('Name', { exact: true }).fill('form-env');
    await page.getByLabel('Repository URL').fill(REPO);
    await page.getByLabel('Image').fill('minimal');
    await page.getByLabel('Access').selectOption('allowlist');
    const domains = page.getByLabel('Domains (one a line)');
    await domains.fill('api.example.test\n*evil.example.test');
    const fieldError = page.locator('#f-domains-error');
    await fieldError.waitFor();
    expect(await fieldError.textContent()).toContain('internet.domains[1]');
    expect(await page.getByRole('button', { name: 'Save' }).isDisabled()).toBe(true);
    await browser.screenshots('environment-form-error');

    await domains.fill('api.example.test\n*.cdn.example.test');
    await page.getByText('Valid.').waitFor();
    expect(await fieldError.count()).toBe(0);
    // The YAML view shows what the form wrote.
    await page.getByRole('button', { name: 'YAML' }).click();
    const yaml = await page.getByLabel('Environment file (YAML)').inputValue();
    expect(yaml).toContain('name: form-env');
    expect(yaml).toContain('- "*.cdn.example.test"');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(`${server.url}/environments/form-env`);
    const stored = (await server.request('GET', '/v1/environments/form-env')).json as {
      spec: { image: string; internet: { access: string; domains: string[] } };
    };
    expect(stored.spec.image).toBe('minimal');
    expect(stored.spec.internet).toMatchObject({
      access: 'allowlist',
      domains: ['api.example.test', '*.cdn.example.test'],
    });
  });

  it('the form covers variables, resources and services, each checked at its field as you type', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/environments/new`);
    await page.getByRole('button', { name: 'Form' }).click();
    await page.getByLabel('Name', { exact: true }).fill('full-env');
    await page.getByLabel('Repository URL').fill(REPO);
    const save = page.getByRole('button', { name: 'Save' });

    // Variables: a line that is not NAME=value is flagged at once, and blocks saving.
    const variables = page.getByLabel('Variables (NAME=value, one a line)');
    await variables.fill('NODE_ENV=test\nnot a variable');
    await page.locator('#f-env-error').getByText('line 2 is not NAME=value').waitFor();
    await page.getByText('Valid.').waitFor();
    expect(await save.isDisabled()).toBe(true);
    // A name the server refuses is flagged under the same field by the server's validation.
    await variables.fill('NODE_ENV=test\n1BAD=x');
    await page.locator('#f-env-error').filter({ hasText: '1BAD' }).waitFor();
    await variables.fill('NODE_ENV=test\nLOG_LEVEL=debug=1');
    await page.getByText('Valid.').waitFor();
    expect(await page.locator('#f-env-error').count()).toBe(0);

    // Resources: not a number at once; out of range from the server, under the field.
    const memory = page.getByLabel('Memory (MB)');
    await memory.fill('lots');
    await page.locator('#f-res-memoryMb-error').getByText('not a number').waitFor();
    expect(await save.isDisabled()).toBe(true);
    await memory.fill('10');
    await page.locator('#f-res-memoryMb-error').filter({ hasText: 'resources.memoryMb' }).waitFor();
    expect(await save.isDisabled()).toBe(true);
    await memory.fill('2048');
    await page.getByLabel('CPUs').fill('1.5');

    // Services: one added; its missing command flagged under its own field.
    await page.getByRole('button', { name: 'Add service' }).click();
    await page.getByLabel('Service 1 name').fill('db');
    await page.locator('#f-svc-0-command-error').waitFor();
    expect(await save.isDisabled()).toBe(true);
    await page.getByLabel('Service 1 command').fill('postgres -D /var/lib/pg');
    await page.getByLabel('Service 1 ready when').selectOption('port');
    await page.getByLabel('Service 1 port').fill('5432');
    await page.getByText('Valid.').waitFor();
    await browser.screenshots('environment-form-full');
    await save.click();
    await page.waitForURL(`${server.url}/environments/full-env`);
    const stored = (await server.request('GET', '/v1/environments/full-env')).json as {
      spec: {
        env: Record<string, string>;
        resources: { memoryMb: number; cpus: number };
        services: { name: string; command: string; ready?: { port?: number } }[];
      };
    };
    expect(stored.spec.env).toEqual({ NODE_ENV: 'test', LOG_LEVEL: 'debug=1' });
    expect(stored.spec.resources).toMatchObject({ memoryMb: 2048, cpus: 1.5 });
    expect(stored.spec.services).toMatchObject([
      { name: 'db', command: 'postgres -D /var/lib/pg', ready: { port: 5432 } },
    ]);
  });

  it('sets, replaces and removes a secret, write-only; resets the cache only after a confirmation', async () => {
    const { page } = browser;
    // Every API answer the page gets, to show no value ever comes back.
    const answers: string[] = [];
    page.on('response', (response) => {
      if (new URL(response.url()).pathname.startsWith('/v1/'))
        void response.text().then(
          (text) => answers.push(text),
          () => undefined,
        );
    });
    await page.goto(`${server.url}/environments/web-env`);
    await page.getByLabel('Secret name').fill('NPM_TOKEN');
    await page.getByLabel('Value', { exact: true }).fill('s3cret-value-never-shown');
    await page.getByRole('button', { name: 'Set secret' }).click();
    await page.getByText('NPM_TOKEN (set)').waitFor();
    expect(await page.content()).not.toContain('s3cret-value-never-shown');
    expect((await server.request('GET', '/v1/environments/web-env')).json).toMatchObject({
      secrets: ['NPM_TOKEN'],
    });
    expect(await page.getByLabel('Value', { exact: true }).inputValue()).toBe('');
    const revisionOf = async () =>
      ((await server.request('GET', '/v1/environments/web-env')).json as { revision: number })
        .revision;

    // Replace it: a new value, still never shown.
    const before = await revisionOf();
    await page.getByLabel('Secret name').fill('NPM_TOKEN');
    await page.getByLabel('Value', { exact: true }).fill('r3placed-value-never-shown');
    await page.getByRole('button', { name: 'Set secret' }).click();
    await expect.poll(revisionOf).toBeGreaterThan(before);
    await page.getByText('NPM_TOKEN (set)').waitFor();
    expect(await page.getByLabel('Value', { exact: true }).inputValue()).toBe('');

    // Remove it: the name is no longer set, on the page and in the API.
    await page.getByRole('button', { name: 'Remove NPM_TOKEN' }).click();
    await page.getByText('NPM_TOKEN (set)').waitFor({ state: 'detached' });
    expect((await server.request('GET', '/v1/environments/web-env')).json).toMatchObject({
      secrets: [],
    });
    const shown = await page.content();
    expect(shown).not.toContain('s3cret-value-never-shown');
    expect(shown).not.toContain('r3placed-value-never-shown');
    expect(
      JSON.stringify((await server.request('GET', '/v1/environments/web-env')).json),
    ).not.toMatch(/never-shown/);
    expect(answers.length).toBeGreaterThan(3);
    expect(answers.join('\n')).not.toMatch(/never-shown/);

    await page.getByRole('button', { name: 'Reset cache' }).click();
    await page.getByRole('group', { name: 'Confirm cache reset' }).waitFor();
    await browser.screenshots('environment-page');
    await page.getByRole('button', { name: 'Yes, reset the cache' }).click();
    await page.getByText('Cache reset.').waitFor();

    await page.getByRole('link', { name: 'Environments' }).click();
    const row = page.getByRole('row').filter({ hasText: 'web-env' });
    await row.waitFor();
    const text = (await row.textContent()) ?? '';
    expect(text).toContain(REPO);
    expect(text).toContain('minimal');
    expect(text).toContain('allowlist');
    expect(text).toContain('none');
    await browser.screenshots('environments');
  });

  it('tokens (admin): the new value is shown once; revoke after a confirmation', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByLabel('Name').fill('ci-bot');
    await page.getByRole('button', { name: 'Create token' }).click();
    const value = (await page.locator('.secret-once').textContent()) ?? '';
    expect(value).toMatch(/^berth_/);
    expect((await server.request('GET', '/v1/whoami', { token: value })).status).toBe(200);
    await browser.screenshots('tokens');
    await page.getByRole('button', { name: 'Done' }).click();
    expect(await page.content()).not.toContain(value);
    await page
      .getByRole('row')
      .filter({ hasText: 'ci-bot' })
      .getByRole('button', { name: 'Revoke…' })
      .click();
    await page.getByRole('button', { name: 'Revoke ci-bot' }).click();
    await page
      .getByRole('row')
      .filter({ hasText: 'ci-bot' })
      .getByText(/revoked/)
      .waitFor();
    expect((await server.request('GET', '/v1/whoami', { token: value })).status).toBe(401);
  });

  it('a member sees only their environments; the rest, and /tokens, are not found', async () => {
    const alice = await server.createToken('alice');
    const bob = await server.createToken('bob');
    for (const [token, name] of [
      [alice, 'alices'],
      [bob, 'bobs'],
    ] as const) {
      const created = await server.request('POST', '/v1/environments', {
        token,
        body: { spec: { name, repository: REPO } },
      });
      expect(created.status).toBe(201);
    }
    const member = await openBrowser();
    try {
      const { page } = member;
      await signIn(page, server.url, alice, '/environments');
      await page.getByRole('link', { name: 'alices' }).waitFor();
      const names = await page.locator('table tbody tr td:first-child').allTextContents();
      expect(names).toEqual(['alices']);
      expect(await page.getByRole('link', { name: 'Tokens' }).count()).toBe(0);

      await page.goto(`${server.url}/environments/bobs`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();
      expect(await page.content()).not.toContain(REPO);
      await page.goto(`${server.url}/environments/web-env`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();
      await page.goto(`${server.url}/tokens`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();
      await member.screenshots('not-found');
    } finally {
      await member.close();
    }
  });
});
