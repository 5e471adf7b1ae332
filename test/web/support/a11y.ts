import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { SCREENSHOT_DIR } from './browser.js';

/**
 * Accessibility checks the browser tests share: the page's interactive controls and their
 * accessible names as Chromium's own accessibility tree has them, and a Tab walk that records
 * which controls the keyboard reaches.
 */

const INTERACTIVE = new Set([
  'button',
  'link',
  'textbox',
  'searchbox',
  'combobox',
  'checkbox',
  'radio',
  'spinbutton',
  'listbox',
  'switch',
  'slider',
  'tab',
  'menuitem',
]);

interface AxNode {
  ignored: boolean;
  role?: { value?: string };
  name?: { value?: string };
}

/** The page's interactive elements (by Chromium's accessibility tree) and those without a name. */
export async function accessibleNames(page: Page): Promise<{ named: string[]; unnamed: string[] }> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as { nodes: AxNode[] };
    const controls = nodes.filter((n) => !n.ignored && INTERACTIVE.has(n.role?.value ?? ''));
    const label = (n: AxNode) => `${n.role?.value ?? ''} "${n.name?.value ?? ''}"`;
    return {
      named: controls.filter((n) => (n.name?.value ?? '').trim() !== '').map(label),
      unnamed: controls.filter((n) => (n.name?.value ?? '').trim() === '').map(label),
    };
  } finally {
    await cdp.detach();
  }
}

// The page's visible, enabled controls, each tagged data-kw=N; a radio group counts once (the
// keyboard enters a group once and moves inside it with the arrows). Run in the page.
const TAG_CONTROLS = `(() => {
  const selector = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';
  const out = [];
  const groups = new Set();
  let n = 0;
  for (const el of document.querySelectorAll(selector)) {
    if (el.getClientRects().length === 0) continue;
    el.setAttribute('data-kw', String(n));
    const radio = el.type === 'radio' && el.name ? el.name : '';
    const label = (el.getAttribute('aria-label') || el.labels?.[0]?.textContent || el.textContent || el.getAttribute('placeholder') || el.tagName).trim().slice(0, 60);
    out.push({ n, radio, label: el.tagName.toLowerCase() + ' "' + label + '"' });
    n++;
  }
  return JSON.stringify(out);
})()`;

/**
 * Presses Tab from the top of the page until the focus has gone round, and returns the controls
 * the keyboard never reached (by a description). A radio group is reached when one of its
 * radios is.
 */
export async function unreachedByTab(page: Page): Promise<string[]> {
  const controls = JSON.parse(await page.evaluate<string>(TAG_CONTROLS)) as {
    n: number;
    radio: string;
    label: string;
  }[];
  // Start before the first control.
  await page.evaluate<string>(
    `(() => { document.activeElement?.blur?.(); window.getSelection()?.removeAllRanges(); window.scrollTo(0, 0); return ''; })()`,
  );
  const reached = new Set<number>();
  for (let i = 0; i < controls.length * 2 + 10; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate<string>(`document.activeElement?.getAttribute('data-kw') ?? ''`);
    if (at !== '') reached.add(Number(at));
  }
  const groupsReached = new Set(
    controls.filter((c) => c.radio !== '' && reached.has(c.n)).map((c) => c.radio),
  );
  return controls
    .filter((c) => !reached.has(c.n) && !(c.radio !== '' && groupsReached.has(c.radio)))
    .map((c) => c.label);
}

/** NAME-light-1280.png, NAME-light-390.png, NAME-dark-1280.png, NAME-dark-390.png. */
export async function screenshotsLightDark(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const before = page.viewportSize() ?? { width: 1280, height: 900 };
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
      await page.screenshot({
        path: join(SCREENSHOT_DIR, `${name}-${scheme}-${width}.png`),
        fullPage: true,
      });
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize(before);
}
