import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { accessibleNames, screenshotsLightDark, unreachedByTab } from './support/a11y.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/**
 * Every page by keyboard only: the environments list, the environment form (YAML and form
 * views), an environment's page, the task list, a task page and the tokens page, each reached
 * through the keyboard (Tab to a link, Enter); on each, Tab reaches every visible control
 * (radio groups once) and every control has an accessible name in Chromium's accessibility
 * tree. Each page is written as screenshots at 1280 and 390 px, light and dark (artefacts in
 * .berth-test/web-screenshots/, not committed). The task is put in the real store as the
 * lifecycle records it (no Docker).
 */

const DIFF = `diff --git a/notes.txt b/notes.txt
new file mode 100644
--- /dev/null
+++ b/notes.txt
@@ -0,0 +1 @@
+written by the agent
`;

/** Presses Tab until the control has the focus (throws when it is never reached). */
async function tabTo(page: Page, control: Locator, what: string, max = 120): Promise<void> {
  await control.waitFor();
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (
      await control.evaluate(
        (e: { ownerDocument: { activeElement: unknown } }) => e === e.ownerDocument.activeElement,
      )
    )
      return;
  }
  throw new Error(`${what} is not reached by Tab`);
}

async function checkPage(page: Page, name: string): Promise<void> {
  expect(await unreachedByTab(page), `${name}: controls Tab never reaches`).toEqual([]);
  const names = await accessibleNames(page);
  expect(names.unnamed, `${name}: controls without a name`).toEqual([]);
  await screenshotsLightDark(page, `page-${name}`);
}

describe('web UI: every page by keyboard, every control named; screenshots light and dark', () => {
  let server: TestServer;
  let browser: TestBrowser;
  let store: SqliteStore;
  beforeAll(async () => {
    server = await startTestServer();
    const made = await server.request('POST', '/v1/environments', {
      body: {
        spec: {
          name: 'kb-env',
          repository: 'https://git.example.test/acme/kb.git',
          internet: { access: 'allowlist', domains: ['api.example.test'] },
          services: [{ name: 'db', command: 'sleep infinity', ready: { port: 5432 } }],
        },
      },
    });
    expect(made.status, made.text).toBe(201);
    await server.createToken('reviewer');
    store = SqliteStore.open(server.dataDir);
    const now = new Date().toISOString();
    await store.createTask(
      {
        id: 'task_keyboard',
        environmentId: (made.json as { id: string }).id,
        prompt: 'write the notes',
        command: null,
        ref: { branch: 'main' },
        repository: null,
        attemptCount: 1,
        status: 'succeeded',
        createdAt: now,
        updatedAt: now,
      },
      [
        {
          id: 'att_keyboard',
          taskId: 'task_keyboard',
          index: 0,
          phase: 'succeeded',
          cacheHit: true,
          error: null,
          result: {
            baseCommit: 'b'.repeat(40),
            diff: DIFF,
            turnDiff: DIFF,
            files: [{ path: 'notes.txt', added: 1, removed: 0, binary: false }],
            secretFiles: [],
            message: 'Wrote notes.txt.',
            commands: [
              { command: 'echo hi', exitCode: 0, output: 'hi\n', phase: 'agent', durationMs: 5 },
            ],
            snapshotImage: null,
            deniedHosts: [
              {
                host: 'registry.example.test',
                method: 'GET',
                reason: 'not on the allowlist',
                suggestion: 'internet.domains: [api.example.test, registry.example.test]',
              },
            ],
          },
          createdAt: now,
          startedAt: now,
          finishedAt: now,
        } as unknown as Attempt,
      ],
    );
    await store.appendAttemptEvents([
      { attemptId: 'att_keyboard', seq: 1, at: now, type: 'phase', phase: 'agent' },
      { attemptId: 'att_keyboard', seq: 2, at: now, type: 'log', stream: 'stdout', text: 'hi\n' },
      { attemptId: 'att_keyboard', seq: 3, at: now, type: 'warning', message: 'a warning' },
      { attemptId: 'att_keyboard', seq: 4, at: now, type: 'phase', phase: 'succeeded' },
    ] as never);
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await store?.close();
    await server?.close();
  });

  it('walks /tasks, a task, /environments, the form, an environment and /tokens by keyboard', async () => {
    const { page } = browser;
    await signIn(page, server.url, server.adminToken, '/tasks');
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'task_keyboard' }).waitFor();
    await checkPage(page, 'tasks');

    await tabTo(page, page.getByRole('link', { name: 'task_keyboard' }), 'the task link');
    await page.keyboard.press('Enter');
    await page.getByRole('region', { name: 'Attempt 1 details' }).waitFor();
    await page.getByRole('list', { name: 'Denied hosts' }).waitFor();
    await checkPage(page, 'task');

    const nav = page.getByRole('navigation', { name: 'Main' });
    await tabTo(page, nav.getByRole('link', { name: 'Environments' }), 'Environments');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Environments' }).waitFor();
    await page.getByRole('link', { name: 'kb-env' }).waitFor();
    await checkPage(page, 'environments');

    await tabTo(page, page.getByRole('link', { name: 'kb-env' }), 'the environment link');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Environment kb-env' }).waitFor();
    await page.getByText('Valid.').waitFor();
    await checkPage(page, 'environment');

    await tabTo(page, page.getByRole('button', { name: 'Form' }), '"Form"');
    await page.keyboard.press('Enter');
    await page.getByLabel('Service 1 name').waitFor();
    await checkPage(page, 'environment-form');

    await page.goto(`${server.url}/environments`);
    await tabTo(page, page.getByRole('link', { name: /New environment/ }), 'New environment');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'New environment' }).waitFor();
    await checkPage(page, 'environment-new');

    await tabTo(page, nav.getByRole('link', { name: 'Tokens' }), 'Tokens');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Tokens' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'reviewer' }).waitFor();
    await checkPage(page, 'tokens');
  });
});
