import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import { revealControls, safeNext } from '../../web/src/untrusted-text.js';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/**
 * Issue 13 review findings in the browser: where /login may send the user on; a sign-out that
 * fails on the network does not look successful; a second session cookie set by another port of
 * this host is reported, not obeyed; bidi and invisible control characters in file names, diff
 * lines, log lines and branch names are shown as visible <U+XXXX> tokens.
 */

const ORIGIN = 'http://127.0.0.1:8080';

describe('safeNext', () => {
  it('keeps a path of this origin', () => {
    for (const path of ['/tasks', '/tasks/task_1?x=1#y', '/environments/a%20b'])
      expect(safeNext(path, ORIGIN)).toBe(path);
  });

  it('refuses anything that could leave the origin', () => {
    for (const next of [
      null,
      '',
      'https://evil.example/',
      '//evil.example/',
      '/\\evil.example/',
      '/%09/evil.example/',
      '/%2F/evil.example/',
      '/%5C/evil.example/',
      '/\t/evil.example/',
      '/\n/evil.example/',
      '/%0d%0a/evil.example/',
      'javascript:alert(1)',
      ' /tasks',
    ])
      expect(safeNext(next, ORIGIN), String(next)).toBe('/tasks');
  });
});

describe('revealControls', () => {
  it('shows every bidi and invisible control character as a token, and nothing else', () => {
    const controls = [
      0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f,
      0x061c, 0x200b, 0x200c, 0x200d, 0x2060, 0xfeff,
    ];
    for (const code of controls) {
      const shown = revealControls(`a${String.fromCharCode(code)}b`);
      expect(shown).toBe(`a<U+${code.toString(16).toUpperCase().padStart(4, '0')}>b`);
    }
    expect(revealControls('plain text, ünïcode, 日本')).toBe('plain text, ünïcode, 日本');
  });
});

describe('web UI: hostile sessions and text', () => {
  let server: TestServer;
  let browser: TestBrowser;
  let store: SqliteStore;
  beforeAll(async () => {
    server = await startTestServer();
    browser = await openBrowser();
    store = SqliteStore.open(server.dataDir);
  });
  /** The id of the test's environment (made on first use). */
  async function anEnvironment(): Promise<string> {
    const listed = await server.request('GET', '/v1/environments');
    const found = (listed.json as { environments: { id: string }[] }).environments[0]?.id;
    if (found) return found;
    const created = await server.request('POST', '/v1/environments', {
      body: { spec: { name: 'svc', repository: 'https://git.example/acme/svc.git' } },
    });
    return (created.json as { id: string }).id;
  }
  afterAll(async () => {
    await store?.close();
    await browser?.close();
    await server?.close();
  });

  it('a sign-out that fails on the network keeps the page and says so', async () => {
    const { page, context } = browser;
    await context.clearCookies();
    await signIn(page, server.url, server.adminToken, '/tasks');
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    await page.route('**/v1/session', (route) =>
      route.request().method() === 'DELETE' ? route.abort() : route.continue(),
    );
    await page.getByRole('button', { name: 'Sign out' }).click();
    // (The unreachable-server banner is an alert too.)
    await page.getByText('sign-out failed; try again').waitFor();
    expect(new URL(page.url()).pathname).toBe('/tasks');
    await page.unroute('**/v1/session');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login/);
    expect(
      (await context.cookies(server.url)).find((c) => c.name === 'berth_session'),
    ).toBeUndefined();
  });

  it('a second session cookie (tossed from another port) is reported on /login', async () => {
    const { page, context } = browser;
    await context.clearCookies();
    await signIn(page, server.url, server.adminToken, '/tasks');
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    // What a page on another port of this host can do: cookies are not isolated by port.
    await context.addCookies([
      { name: 'berth_session', value: 'attacker', domain: '127.0.0.1', path: '/v1' },
    ]);
    await page.goto(`${server.url}/tasks`);
    await page.waitForURL(/\/login/);
    await page.getByText("Clear this site's cookies").waitFor();
    await context.clearCookies();
  });

  it('bidi and invisible controls in a file name, diff, log line and branch show as tokens', async () => {
    const environmentId = await anEnvironment();
    const T0 = new Date().toISOString();
    const name = 'src/adm\u202Enis.ts';
    const diff = [
      `diff --git a/${name} b/${name}`,
      'new file mode 100644',
      '--- /dev/null',
      `+++ b/${name}`,
      '@@ -0,0 +1 @@',
      '+if (isAdmin) {\u2066 /* safe */ \u2069 return }',
      '',
    ].join('\n');
    await store.createTask(
      {
        id: 'task_bidi',
        environmentId,
        prompt: 'p',
        command: null,
        ref: { branch: 'main\u200B' },
        repository: null,
        attemptCount: 1,
        status: 'succeeded',
        createdAt: T0,
        updatedAt: T0,
      },
      [
        {
          id: 'att_bidi',
          taskId: 'task_bidi',
          index: 0,
          phase: 'succeeded',
          cacheHit: false,
          error: null,
          result: {
            baseCommit: 'a'.repeat(40),
            diff,
            files: [{ path: name, added: 1, removed: 0 }],
            message: 'done',
            commands: [],
            snapshotImage: null,
            secretFiles: [],
          },
          createdAt: T0,
          startedAt: T0,
          finishedAt: T0,
        } as unknown as Attempt,
      ],
    );
    await store.appendAttemptEvents([
      {
        attemptId: 'att_bidi',
        seq: 1,
        at: T0,
        type: 'log',
        stream: 'stdout',
        text: 'ok\u202Edone\n',
      },
    ] as never);
    const { page, context } = browser;
    await context.clearCookies();
    await signIn(page, server.url, server.adminToken, '/tasks/task_bidi');
    await page.waitForURL(/\/tasks\/task_bidi/);
    await page.getByText('src/adm<U+202E>nis.ts').first().waitFor();
    await page.getByText('<U+2066> /* safe */ <U+2069>', { exact: false }).first().waitFor();
    await page.getByText('ok<U+202E>done').first().waitFor();
    await page.getByText('main<U+200B>').first().waitFor();
    const text = await page.evaluate<string>('document.body.innerText');
    expect(text).not.toMatch(/[\u202A-\u202E\u2066-\u2069\u200B-\u200F\u061C\u2060\uFEFF]/);
    await browser.screenshots('bidi-revealed');
  });

  it("sandbox output cannot pass for Berth's own records, and Jump goes to the real failure", async () => {
    const environmentId = await anEnvironment();
    const T0 = new Date().toISOString();
    await store.createTask(
      {
        id: 'task_spoof',
        environmentId,
        prompt: 'p',
        command: null,
        ref: {},
        repository: null,
        attemptCount: 1,
        status: 'failed',
        createdAt: T0,
        updatedAt: T0,
      },
      [
        {
          id: 'att_spoof',
          taskId: 'task_spoof',
          index: 0,
          phase: 'failed',
          cacheHit: false,
          error: { code: 'task_failed', message: 'the real failure' },
          result: null,
          createdAt: T0,
          startedAt: T0,
          finishedAt: T0,
        } as unknown as Attempt,
      ],
    );
    const fake = '$ npm test  (exit 0)\nerror: FAKE failure printed by the sandbox\n';
    await store.appendAttemptEvents([
      { attemptId: 'att_spoof', seq: 1, at: T0, type: 'phase', phase: 'agent' },
      {
        attemptId: 'att_spoof',
        seq: 2,
        at: T0,
        type: 'log',
        stream: 'stdout',
        text: 'REAL-ERROR-LINE\n',
      },
      { attemptId: 'att_spoof', seq: 3, at: T0, type: 'command', command: 'make', exitCode: 2 },
      { attemptId: 'att_spoof', seq: 4, at: T0, type: 'error', message: 'the real failure' },
      ...Array.from({ length: 300 }, (_, i) => ({
        attemptId: 'att_spoof',
        seq: 5 + i,
        at: T0,
        type: 'log',
        stream: 'stdout',
        text: i === 299 ? fake : `filler ${i}\n`,
      })),
    ] as never);
    const { page, context } = browser;
    await context.clearCookies();
    await signIn(page, server.url, server.adminToken, '/tasks/task_spoof');
    await page.waitForURL(/\/tasks\/task_spoof/);
    const log = page.getByRole('log', { name: 'Log' });
    await log.getByText('FAKE failure printed by the sandbox').waitFor();
    // The forged lines are plain text rows: no Berth marker beside them.
    const forged = log.locator('.log-line', { hasText: 'FAKE failure' });
    expect(await forged.locator('.berth-mark').count()).toBe(0);
    expect(
      await log.locator('.log-line', { hasText: 'npm test' }).locator('.berth-mark').count(),
    ).toBe(0);
    await page.getByRole('button', { name: 'Jump to the failure' }).click();
    const marked = log.locator('.log-line.marked');
    await marked.waitFor();
    expect(await marked.textContent()).toContain('the real failure');
    expect(await marked.getByRole('img', { name: 'Berth: error' }).count()).toBe(1);
  });

  it('a very long log line and a very large file diff are shown in part until asked', async () => {
    const environmentId = await anEnvironment();
    const T0 = new Date().toISOString();
    const big = Array.from({ length: 3000 }, (_, i) => `+line ${i}`).join('\n');
    const diff = `diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,3000 @@\n${big}\n`;
    await store.createTask(
      {
        id: 'task_long',
        environmentId,
        prompt: 'p',
        command: null,
        ref: {},
        repository: null,
        attemptCount: 1,
        status: 'succeeded',
        createdAt: T0,
        updatedAt: T0,
      },
      [
        {
          id: 'att_long',
          taskId: 'task_long',
          index: 0,
          phase: 'succeeded',
          cacheHit: false,
          error: null,
          result: {
            baseCommit: 'a'.repeat(40),
            diff,
            files: [{ path: 'big.txt', added: 3000, removed: 0 }],
            message: 'done',
            commands: [],
            snapshotImage: null,
            secretFiles: [],
          },
          createdAt: T0,
          startedAt: T0,
          finishedAt: T0,
        } as unknown as Attempt,
      ],
    );
    const line = `\u001b[31m${'x'.repeat(2_000_000)}\u001b[0mEND-OF-LINE\n`;
    await store.appendAttemptEvents([
      { attemptId: 'att_long', seq: 1, at: T0, type: 'log', stream: 'stdout', text: line },
    ] as never);
    const { page, context } = browser;
    await context.clearCookies();
    await signIn(page, server.url, server.adminToken, '/tasks/task_long');
    await page.waitForURL(/\/tasks\/task_long/);
    const log = page.getByRole('log', { name: 'Log' });
    const more = log.getByRole('button', { name: /Show more/ });
    await more.waitFor();
    const row = log.locator('.log-line').first();
    expect(((await row.textContent()) ?? '').length).toBeLessThan(5000);
    await more.click();
    await expect.poll(async () => ((await row.textContent()) ?? '').length).toBeGreaterThan(8000);
    // The 3,000-line file waits behind a button; opened, its lines are there.
    const show = page.getByRole('button', { name: 'Show 3000 lines' });
    await show.waitFor();
    expect(await page.getByText('line 2999', { exact: true }).count()).toBe(0);
    await show.click();
    await page.getByText('line 2999', { exact: true }).first().waitFor();
  });
});
