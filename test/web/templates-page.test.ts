import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { accessibleNames, unreachedByTab } from './support/a11y.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/**
 * The /templates pages (issue 16 item 2) in a real browser against a real server (no Docker):
 * an admin creates a template from YAML, sees it listed, changes it; a refusal of the server
 * shows at its field's line; deleting a template an environment extends asks first and shows
 * the server's refusal naming the environment; a token that is no admin reads the template
 * without create, save or delete controls. Everything keyboard reachable and labelled.
 */

const TEMPLATE = `name: python-base
description: <b>Python</b> shared setup
image: minimal
setup: |
  echo base
`;

describe('web UI: /templates', () => {
  let server: TestServer;
  let browser: TestBrowser;
  let bob: string;
  beforeAll(async () => {
    server = await startTestServer();
    bob = await server.createToken('bob');
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('lets an admin create a template from YAML, list it, change it, and shows a refused delete', async () => {
    const { page } = browser;
    await signIn(page, server.url, server.adminToken, '/tasks');
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Templates' })
      .click();
    await page.getByRole('heading', { name: 'Templates' }).waitFor();
    await page.getByText('No template yet.').waitFor();
    await page.getByRole('link', { name: 'New template' }).click();
    await page.getByRole('heading', { name: 'New template' }).waitFor();

    // A field the server refuses: the error names it and its line.
    await page
      .getByLabel('Template file (YAML)')
      .fill(`${TEMPLATE}repository: https://x.test/a.git\n`);
    await page.getByRole('button', { name: 'Save' }).click();
    const errors = page.getByRole('list', { name: 'Errors' });
    await errors.waitFor();
    expect(await errors.innerText()).toMatch(/line 6, column 1: repository: unknown field/);
    expect(await page.getByLabel('Template file (YAML)').getAttribute('aria-invalid')).toBe('true');

    // Text that is no YAML: its line, and nothing sent.
    await page.getByLabel('Template file (YAML)').fill('name: a\nsetup: [unclosed\n');
    await page.getByRole('button', { name: 'Save' }).click();
    await errors.getByText(/^line \d+, column \d+: /).waitFor();
    expect((await server.request('GET', '/v1/templates')).json).toEqual({ templates: [] });

    await page.getByLabel('Template file (YAML)').fill(TEMPLATE);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(/\/templates\/python-base$/);
    await page.getByRole('heading', { name: 'Template python-base' }).waitFor();
    const stored = await server.request('GET', '/v1/templates/python-base');
    expect(stored.status, stored.text).toBe(200);
    expect((stored.json as { spec: { setup: string } }).spec.setup).toBe('echo base\n');

    // An environment built on it: listed with the template, and the reason deletion is refused.
    const environment = await server.request('POST', '/v1/environments', {
      body: {
        spec: {
          name: 'payments',
          extends: 'python-base',
          repository: 'https://git.example.test/acme/pay.git',
        },
      },
    });
    expect(environment.status, environment.text).toBe(201);

    await page.goto(`${server.url}/templates`);
    const row = page.getByRole('row', { name: /python-base/ });
    await row.waitFor();
    await page.getByRole('cell', { name: 'payments' }).waitFor();
    // Text from the API is text: the description's markup is shown, never made into elements.
    expect(await row.innerText()).toMatch(
      /python-base\s+<b>Python<\/b> shared setup\s+–\s+payments/,
    );
    expect(await row.locator('b').count()).toBe(0);
    expect(await unreachedByTab(page)).toEqual([]);
    expect((await accessibleNames(page)).unnamed).toEqual([]);

    // Changing it: saved, and the environment built on it merged again.
    await row.getByRole('link', { name: 'python-base' }).click();
    const editor = page.getByLabel('Template file (YAML)');
    await editor.waitFor();
    expect(await editor.inputValue()).toContain('echo base');
    await editor.fill(TEMPLATE.replace('echo base', 'echo base v2'));
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    expect(await page.getByRole('status').filter({ hasText: 'Saved.' }).innerText()).toContain(
      'payments',
    );
    const changed = await server.request('GET', '/v1/templates/python-base');
    expect((changed.json as { spec: { setup: string }; revision: number }).spec.setup).toBe(
      'echo base v2\n',
    );

    // Deleting asks first; the server refuses, naming the environment; the template stays.
    await page.getByRole('button', { name: 'Delete template' }).click();
    await page.getByRole('group', { name: 'Confirm deletion' }).waitFor();
    expect(await unreachedByTab(page)).toEqual([]);
    expect((await accessibleNames(page)).unnamed).toEqual([]);
    await page.getByRole('button', { name: 'Yes, delete python-base' }).click();
    const refusal = page.getByRole('alert');
    await refusal.waitFor();
    expect(await refusal.innerText()).toMatch(/extended by environments payments/);
    expect((await server.request('GET', '/v1/templates/python-base')).status).toBe(200);
    await browser.screenshots('templates');
  });

  it('shows a token that is no admin the templates without create, save or delete', async () => {
    const second = await openBrowser();
    try {
      const { page } = second;
      await signIn(page, server.url, bob, '/templates');
      await page.getByRole('row', { name: /python-base/ }).waitFor();
      expect(await page.getByRole('link', { name: 'New template' }).count()).toBe(0);
      await page.getByRole('link', { name: 'python-base' }).click();
      const editor = page.getByLabel('Template file (YAML)');
      await editor.waitFor();
      expect(await editor.inputValue()).toContain('echo base v2');
      expect(await editor.getAttribute('readonly')).not.toBeNull();
      expect(await page.getByRole('button', { name: 'Save' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: /Delete/ }).count()).toBe(0);
      await page.goto(`${server.url}/templates/new`);
      await page.getByRole('heading', { name: /not found/i }).waitFor();
    } finally {
      await second.close();
    }
  });
});
