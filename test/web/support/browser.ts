import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's chromium, headless, driven by playwright-core (no browser download): a fresh profile
 * per context, nothing that talks to the outside (no sync, no component updates, no QUIC).
 * Screenshots go to .berth-test/web-screenshots/ (git-ignored), as artefacts of the run.
 */

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(process.cwd(), '.berth-test', 'web-screenshots');

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Console errors of the page (a CSP violation shows here). */
  consoleErrors: string[];
  /** Writes NAME-1280.png and NAME-390.png of the current page. */
  screenshots(name: string): Promise<void>;
  close(): Promise<void>;
}

export async function openBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: the web UI's tests use Debian's chromium (scripts/setup.sh installs it: apt-get install chromium)`,
    );
  const profile = mkdtempSync(join(tmpdir(), 'berth-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  return {
    context,
    page,
    consoleErrors,
    async screenshots(name) {
      mkdirSync(SCREENSHOT_DIR, { recursive: true });
      const before = page.viewportSize() ?? { width: 1280, height: 900 };
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
        await page.screenshot({
          path: join(SCREENSHOT_DIR, `${name}-${width}.png`),
          fullPage: true,
        });
      }
      await page.setViewportSize(before);
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Signs in on /login with a token (the page the server sends the browser to). */
export async function signIn(page: Page, baseUrl: string, token: string, path = '/tasks') {
  await page.goto(baseUrl + path);
  await page.waitForURL(/\/login/);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
