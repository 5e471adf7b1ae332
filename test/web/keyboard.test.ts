import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { accessibleNames } from './support/a11y.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/**
 * The task list and a task page by keyboard only (Tab, Shift+Tab, Enter, Space, arrows), every
 * control with an accessible name (Chromium's own accessibility tree), and the list's "Who"
 * column as each token may see it. The repository does not exist, so each attempt fails at its
 * checkout at once and nothing leaves this machine.
 */

const REPO = '/nonexistent/berth-keyboard/app.git';

/** Presses Tab until the control has the focus (throws when it is never reached). */
async function tabTo(page: Page, control: Locator, what: string, max = 80): Promise<void> {
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

describe('web UI: by keyboard, every control named; who made each task', () => {
  let server: TestServer;
  let browser: TestBrowser;
  let alice: string;
  beforeAll(async () => {
    server = await startTestServer({ allowLocalRepositories: true });
    alice = await server.createToken('alice');
    for (const [token, name] of [
      [alice, 'alices'],
      [server.adminToken, 'admins'],
    ] as const) {
      const made = await server.request('POST', '/v1/environments', {
        token,
        body: { spec: { name, repository: REPO } },
      });
      expect(made.status, made.text).toBe(201);
    }
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('/tasks: a task started, filtered and opened with the keyboard alone', async () => {
    const { page } = browser;
    await signIn(page, server.url, alice, '/tasks');
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    await page.getByText('No tasks.').waitFor();

    await tabTo(page, page.getByRole('button', { name: 'New task' }), '"New task"');
    await page.keyboard.press('Enter');
    const form = page.getByRole('form', { name: 'New task' });
    await form.waitFor();
    const formNames = await accessibleNames(page);
    expect(formNames.unnamed).toEqual([]);
    expect(formNames.named).toEqual(
      expect.arrayContaining([
        'combobox "Environment"',
        'textbox "Branch or SHA"',
        'spinbutton "Attempts"',
        'radio "a command"',
        'textbox "Prompt"',
        'button "Start task"',
        'searchbox "Search"',
        'combobox "Status"',
        'button "Sign out"',
      ]),
    );
    await tabTo(page, form.getByLabel('Environment', { exact: true }), 'the environment');
    await page.keyboard.press('ArrowDown');
    expect(await form.getByLabel('Environment', { exact: true }).inputValue()).toBe('alices');
    await page.keyboard.press('Tab'); // Branch or SHA: the default branch
    await page.keyboard.press('Tab');
    await page.keyboard.press('ArrowUp'); // Attempts: 2
    expect(await form.getByLabel('Attempts').inputValue()).toBe('2');
    await tabTo(page, form.getByRole('radio', { name: 'a prompt (the agent)' }), 'the prompt');
    await page.keyboard.press('ArrowDown'); // the radio group: "a command"
    expect(await form.getByRole('radio', { name: 'a command' }).isChecked()).toBe(true);
    await tabTo(page, form.getByRole('textbox', { name: 'Command' }), 'the command');
    await page.keyboard.type('echo keyboard');
    await tabTo(page, form.getByRole('button', { name: 'Start task' }), '"Start task"');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/tasks\/task_/);
    const taskId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2] ?? '');

    // Back to the list: the task's row, found with the status filter and the search box.
    await page.goto(`${server.url}/tasks`);
    const row = page.getByRole('row').filter({ hasText: taskId });
    await row.waitFor();
    await row.getByText('failed').waitFor({ timeout: 60_000 });
    await tabTo(page, page.getByLabel('Status'), 'the status filter');
    await page.keyboard.press('ArrowDown'); // queued
    await page.getByText('No tasks.').waitFor();
    await page.keyboard.press('ArrowDown'); // running
    await page.keyboard.press('ArrowDown'); // succeeded
    await page.keyboard.press('ArrowDown'); // failed
    expect(await page.getByLabel('Status').inputValue()).toBe('failed');
    await row.waitFor();
    await page.keyboard.press('Tab');
    await page.keyboard.type('no such task');
    await page.getByText('No tasks.').waitFor();
    for (let i = 0; i < 'no such task'.length; i++) await page.keyboard.press('Backspace');
    await page.keyboard.type('keyboard');
    await row.waitFor();
    const names = await accessibleNames(page);
    expect(names.unnamed).toEqual([]);
    expect(names.named).toEqual(expect.arrayContaining([`link "${taskId}"`]));
    await tabTo(page, row.getByRole('link', { name: taskId }), 'the task link');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${server.url}/tasks/${taskId}`);
  });

  it('/tasks/ID: attempts shown and picked, log paused, follow-up and pull request sent by keyboard', async () => {
    const { page } = browser;
    await page
      .locator('.heading .status')
      .filter({ hasText: /^(succeeded|failed|cancelled)$/ })
      .waitFor({ timeout: 60_000 });
    const second = page.getByRole('article', { name: 'Attempt 2' });
    await tabTo(page, second.getByRole('button', { name: 'Show' }), 'attempt 2 "Show"');
    await page.keyboard.press('Enter');
    await page.getByRole('region', { name: 'Attempt 2 details' }).waitFor();
    expect(await second.getByRole('button', { name: 'Show' }).getAttribute('aria-pressed')).toBe(
      'true',
    );
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter'); // Pick
    await second.getByText('picked').waitFor();

    const pause = page.getByRole('button', { name: 'Pause' });
    await tabTo(page, pause, '"Pause"');
    await page.keyboard.press('Enter');
    const follow = page.getByRole('button', { name: 'Follow', exact: true });
    await follow.waitFor();
    expect(await follow.getAttribute('aria-pressed')).toBe('false');

    await tabTo(page, page.getByRole('button', { name: 'Copy apply command' }), '"Copy"');
    await page.keyboard.press('Enter');

    const followUp = page.getByRole('form', { name: 'Follow-up' });
    await tabTo(page, followUp.getByRole('textbox'), 'the follow-up box');
    await page.keyboard.type('echo again');
    await tabTo(page, followUp.getByRole('button', { name: 'Send follow-up' }), '"Send"');
    await page.keyboard.press('Enter');
    // Sent: the server answers (a follow-up of an attempt that never started is refused, and
    // the refusal shows in the box).
    const answered = followUp
      .locator('.error')
      .or(page.getByRole('article', { name: 'Attempt 3' }));
    await answered.first().waitFor();

    const pr = page.getByRole('form', { name: 'Pull request' });
    await tabTo(page, pr.getByLabel('Pull request title'), 'the PR title');
    await page.keyboard.type('By keyboard');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Space');
    expect(await pr.getByRole('checkbox', { name: 'Draft' }).isChecked()).toBe(true);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter'); // Create pull request
    await pr.locator('.error').waitFor();

    const names = await accessibleNames(page);
    expect(names.unnamed).toEqual([]);
    expect(names.named).toEqual(
      expect.arrayContaining([
        'button "Copy apply command"',
        'button "Create pull request"',
        'checkbox "Draft"',
        'textbox "Pull request title"',
      ]),
    );
    await browser.screenshots('task-keyboard');
  });

  it('"Who": the token that made each task; a member sees only the tasks their token may see', async () => {
    const made = await server.request('POST', '/v1/tasks', {
      body: { environment: 'admins', command: 'true' },
    });
    expect(made.status, made.text).toBe(201);
    const adminTask = (made.json as { id: string }).id;
    const { page } = browser;
    await page.goto(`${server.url}/tasks`);
    const rows = page.locator('table.tasks tbody tr');
    await rows.first().waitFor();
    const whoIndex = (await page.locator('table.tasks thead th').allTextContents()).indexOf('Who');
    expect(whoIndex).toBeGreaterThan(0);
    const who = await rows.evaluateAll(
      (trs: { cells: ({ textContent: string | null } | undefined)[] }[], i: number) =>
        trs.map((tr) => tr.cells[i]?.textContent ?? ''),
      whoIndex,
    );
    expect(who).toEqual(['alice']);
    expect(await page.content()).not.toContain(adminTask);

    const admin = await openBrowser();
    try {
      await signIn(admin.page, server.url, server.adminToken, `/tasks/${adminTask}`);
      await admin.page.getByText(/ by admin$/).waitFor();
      await admin.page.goto(`${server.url}/tasks`);
      const all = admin.page.locator('table.tasks tbody tr');
      await all.filter({ hasText: adminTask }).waitFor();
      const whoAll = await all.evaluateAll(
        (trs: { cells: ({ textContent: string | null } | undefined)[] }[], i: number) =>
          trs.map((tr) => tr.cells[i]?.textContent ?? ''),
        whoIndex,
      );
      expect(whoAll).toEqual(['admin', 'alice']);
      await admin.screenshots('tasks-who');
    } finally {
      await admin.close();
    }
  });
});
