import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { accessibleNames, unreachedByTab } from './support/a11y.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/**
 * The /usage page (issue 17 item 5) in a real browser against a real server: known usage put in
 * the real store as the scheduler records it (no Docker) shows by environment with the
 * environment's name, by token, with the total; a token that is no admin sees only its own
 * environments' usage; the page is reached from the main navigation and by keyboard.
 */

describe('web UI: /usage', () => {
  let server: TestServer;
  let browser: TestBrowser;
  let bob: string;
  beforeAll(async () => {
    server = await startTestServer();
    bob = await server.createToken('bob');
    const shared = await server.request('POST', '/v1/environments', {
      body: { spec: { name: 'payments', repository: 'https://git.example.test/acme/pay.git' } },
    });
    expect(shared.status, shared.text).toBe(201);
    const bobs = await server.request('POST', '/v1/environments', {
      token: bob,
      body: { spec: { name: 'bob-env', repository: 'https://git.example.test/acme/bob.git' } },
    });
    expect(bobs.status, bobs.text).toBe(201);
    const store = SqliteStore.open(server.dataDir);
    const finishedAt = new Date(Date.now() - 3600_000).toISOString();
    const record = (attemptId: string, environmentId: string, createdBy: string, n: number) =>
      store.recordAttemptUsage({
        attemptId,
        taskId: `task_${attemptId}`,
        environmentId,
        createdBy,
        finishedAt,
        inputTokens: 1000 * n,
        outputTokens: 10 * n,
        cpuSeconds: 2.5 * n,
        peakMemoryBytes: 512 * 1024 * 1024,
        wallMs: 60_000 * n,
      });
    await record('att_1', (shared.json as { id: string }).id, 'admin', 1);
    await record('att_2', (shared.json as { id: string }).id, 'admin', 2);
    await record('att_3', (bobs.json as { id: string }).id, 'bob', 4);
    await store.close();
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows the usage by environment and by token, with the total, reached from the navigation', async () => {
    const { page } = browser;
    await signIn(page, server.url, server.adminToken, '/tasks');
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Usage' })
      .click();
    await page.getByRole('heading', { name: 'Usage' }).waitFor();
    const payments = page.getByRole('row', { name: /payments/ });
    await payments.waitFor();
    expect(await payments.innerText()).toMatch(
      /payments\s+2\s+3,000\s+30\s+7\.5\s+512\.0 MB\s+3m 0s/,
    );
    expect(await page.getByRole('row', { name: /bob-env/ }).innerText()).toMatch(
      /bob-env\s+1\s+4,000/,
    );
    expect(await page.getByRole('row', { name: /Total/ }).innerText()).toMatch(
      /Total\s+3\s+7,000\s+70/,
    );

    await page.getByLabel('Group by').selectOption('token');
    await page.getByRole('columnheader', { name: 'Token', exact: true }).waitFor();
    expect(await page.getByRole('row', { name: /^bob/ }).innerText()).toMatch(/bob\s+1\s+4,000/);
    expect(await unreachedByTab(page)).toEqual([]);
    expect((await accessibleNames(page)).unnamed).toEqual([]);
  });

  it("shows a token that is no admin only its environments' usage", async () => {
    const second = await openBrowser();
    try {
      const { page } = second;
      await signIn(page, server.url, bob, '/usage');
      await page.getByRole('row', { name: /bob-env/ }).waitFor();
      expect(await page.getByRole('row', { name: /payments/ }).count()).toBe(0);
      expect(await page.getByRole('row', { name: /Total/ }).innerText()).toMatch(
        /Total\s+1\s+4,000/,
      );
    } finally {
      await second.close();
    }
  });
});
