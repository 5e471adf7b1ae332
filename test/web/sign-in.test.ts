import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/** Signing in and out of the web UI in a real browser (Debian's chromium). */

describe('web UI: sign in and out', () => {
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

  it('a wrong token says "token not valid" and stays on /login', async () => {
    const { page } = browser;
    await signIn(page, server.url, 'berth_wrong');
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('token not valid');
    expect(new URL(page.url()).pathname).toBe('/login');
    await browser.screenshots('login-wrong-token');
  });

  it('a token signs in to the page that was asked for; the token is in no URL or storage; sign out', async () => {
    const { page, context } = browser;
    await signIn(page, server.url, server.adminToken, '/environments');
    await page.waitForURL(`${server.url}/environments`);
    await page.getByRole('heading', { name: 'Environments' }).waitFor();
    expect(page.url()).not.toContain(server.adminToken);
    // What script on the page can read (the test project has no DOM types: a string expression).
    const stored = await page.evaluate<string>(
      'JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie })',
    );
    expect(stored).not.toContain(server.adminToken);
    expect(stored).not.toContain('berth_session');
    const cookies = await context.cookies(server.url);
    const session = cookies.find((c) => c.name === 'berth_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(session?.value).not.toContain(server.adminToken);

    await page.getByRole('link', { name: 'Tasks' }).click();
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    await page.getByText('No tasks.').waitFor();
    await browser.screenshots('tasks-empty');
    // The UI works under its CSP: nothing it does was blocked.
    expect(browser.consoleErrors.filter((m) => /Content.Security.Policy/i.test(m))).toEqual([]);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login/);
    expect(
      (await context.cookies(server.url)).find((c) => c.name === 'berth_session'),
    ).toBeUndefined();
    // Signed out: the pages send the browser back to /login.
    await page.goto(`${server.url}/tasks`);
    await page.waitForURL(/\/login\?next=%2Ftasks/);
  });

  it('an ended session goes back to /login, then on to the page that was asked for', async () => {
    const { page, context } = browser;
    const value = await server.createToken('leaving');
    await signIn(page, server.url, value, '/tasks');
    await page.waitForURL(`${server.url}/tasks`);
    // The token is revoked while the page is open: the next request finds the session ended.
    expect((await server.request('DELETE', '/v1/tokens/leaving')).status).toBe(204);
    await page.goto(`${server.url}/environments/new`);
    await page.waitForURL(/\/login\?next=%2Fenvironments%2Fnew/);
    await page.getByLabel('Token').fill(server.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${server.url}/environments/new`);
    await page.getByRole('heading', { name: 'New environment' }).waitFor();
    expect((await context.cookies(server.url)).length).toBe(1);
  });

  it('after signing in, goes on only to a path of the UI (no open redirect)', async () => {
    const { page } = browser;
    for (const next of [
      '//evil.example.test/x',
      '/\\evil.example.test',
      'https://evil.example.test/',
      'javascript:window.__pwnNext=1',
    ]) {
      await page.goto(`${server.url}/login?next=${encodeURIComponent(next)}`);
      await page.getByLabel('Token').fill(server.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${server.url}/tasks`);
      expect(await page.evaluate<string>('String(window.__pwnNext)')).toBe('undefined');
    }
  });

  it('works by keyboard: Tab to the token, type it, Enter', async () => {
    const { page, context } = browser;
    await context.clearCookies();
    await page.goto(`${server.url}/login`);
    await page.getByLabel('Token').waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement?.id ?? ""')).toBe('token');
    await page.keyboard.type(server.adminToken);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${server.url}/tasks`);
  });

  it('follows the system setting: light, or dark', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/tasks`);
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    const background = () =>
      page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    await page.emulateMedia({ colorScheme: 'light' });
    expect(await background()).toBe('rgb(255, 255, 255)');
    await page.emulateMedia({ colorScheme: 'dark' });
    expect(await background()).toBe('rgb(13, 17, 23)');
    await browser.screenshots('tasks-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('a server that stops answering shows a banner that retries; the page is never blank', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/tasks`);
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    // The server goes away (the list's live stream drops with it) and comes back on the same
    // address and data directory (the session is kept in the store).
    const port = Number(new URL(server.url).port);
    await server.stop();
    await page.getByRole('alert').filter({ hasText: 'Cannot reach the Berth server' }).waitFor();
    expect(await page.getByRole('heading', { name: 'Tasks' }).isVisible()).toBe(true);
    await browser.screenshots('server-unreachable');
    const adminToken = server.adminToken;
    server = await startTestServer({ dataDir: server.dataDir, port });
    await expect
      .poll(() => page.getByText('Cannot reach the Berth server').count(), { timeout: 15_000 })
      .toBe(0);
    expect(new URL(page.url()).pathname).toBe('/tasks');
    expect(adminToken).not.toBe('');
  });
});

describe('web UI: a session survives a server restart', () => {
  it('signed in, the server restarts on the same data directory: the page still opens signed in', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'berth-web-restart-'));
    const first = await startTestServer({ dataDir });
    let second: TestServer | undefined;
    const browser = await openBrowser();
    try {
      const { page } = browser;
      await signIn(page, first.url, first.adminToken, '/environments');
      await page.waitForURL(`${first.url}/environments`);
      await first.stop();
      // Cookies belong to the host, not the port: the restarted server (another port) gets it.
      second = await startTestServer({ dataDir });
      await page.goto(`${second.url}/tokens`);
      await page.getByRole('heading', { name: 'Tokens' }).waitFor();
      expect(new URL(page.url()).pathname).toBe('/tokens');
      // Signing out there ends it for good.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(/\/login/);
      await page.goto(`${second.url}/tokens`);
      await page.waitForURL(/\/login\?next=%2Ftokens/);
    } finally {
      await browser.close();
      await second?.stop();
      await first.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
