import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import type { Attempt } from '../../src/domain/task/attempt.js';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/**
 * /tasks live: a new task and a status change appear on the open list without a reload, from
 * the task stream (GET /v1/tasks/events), and the page does not poll GET /v1/tasks. Tasks are
 * put in the real SQLite store as the lifecycle records them.
 */

describe('web UI: /tasks updates live', () => {
  let server: TestServer;
  let browser: TestBrowser;
  let store: SqliteStore;
  let environmentId = '';
  beforeAll(async () => {
    server = await startTestServer();
    const made = await server.request('POST', '/v1/environments', {
      body: { spec: { name: 'live', repository: 'https://git.example/acme/live.git' } },
    });
    expect(made.status, made.text).toBe(201);
    environmentId = (made.json as { id: string }).id;
    store = SqliteStore.open(server.dataDir);
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await store?.close();
    await server?.close();
  });

  it('shows a new task and its status change without a reload or polling', async () => {
    const { page } = browser;
    await signIn(page, server.url, server.adminToken, '/tasks');
    await page.getByText('No tasks.').waitFor();
    const listReads: string[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/v1/tasks') listReads.push(request.url());
    });
    const now = new Date().toISOString();
    await store.createTask(
      {
        id: 'task_livebrowser',
        environmentId,
        prompt: 'appears by itself',
        command: null,
        ref: { branch: 'topic' },
        repository: null,
        attemptCount: 1,
        status: 'running',
        createdAt: now,
        updatedAt: now,
      },
      [
        {
          id: 'att_livebrowser',
          taskId: 'task_livebrowser',
          index: 0,
          phase: 'agent',
          cacheHit: false,
          error: null,
          result: null,
          createdAt: now,
          startedAt: now,
          finishedAt: null,
        } as unknown as Attempt,
      ],
    );
    const row = page.getByRole('row').filter({ hasText: 'task_livebrowser' });
    await row.getByText('running').waitFor();
    expect(await row.textContent()).toContain('topic');
    await store.updateAttempt('att_livebrowser', {
      phase: 'failed',
      finishedAt: new Date().toISOString(),
      error: { phase: 'agent', code: 'x', message: 'x' } as never,
    });
    await row.getByText('failed').waitFor();
    // The list was not read again: the changes came on the stream.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(listReads).toEqual([]);
    await browser.screenshots('tasks-live');
  });

  it("the task page shows the attempt's warnings and the denied hosts with the suggested change, as text", async () => {
    const { page } = browser;
    const now = new Date().toISOString();
    const hostile = '<img src=x onerror=window.__pwnWarning=1>';
    await store.createTask(
      {
        id: 'task_notes',
        environmentId,
        prompt: 'p',
        command: 'curl',
        ref: {},
        repository: null,
        attemptCount: 1,
        status: 'succeeded',
        createdAt: now,
        updatedAt: now,
      },
      [
        {
          id: 'att_notes',
          taskId: 'task_notes',
          index: 0,
          phase: 'succeeded',
          cacheHit: false,
          error: null,
          result: {
            baseCommit: 'a'.repeat(40),
            diff: '',
            files: [],
            secretFiles: [],
            message: 'done',
            commands: [],
            snapshotImage: null,
            deniedHosts: [
              {
                host: 'api.example.test',
                method: 'POST',
                reason: 'method not allowed (allowed: GET, HEAD, OPTIONS)',
                suggestion: `internet.methods: [GET, HEAD, OPTIONS, POST] (add POST; ${hostile})`,
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
      { attemptId: 'att_notes', seq: 1, at: now, type: 'phase', phase: 'agent' },
      {
        attemptId: 'att_notes',
        seq: 2,
        at: now,
        type: 'warning',
        message: `credential not set by the proxy for ${hostile}`,
      },
      { attemptId: 'att_notes', seq: 3, at: now, type: 'phase', phase: 'succeeded' },
    ] as never);
    await page.goto(`${server.url}/tasks/task_notes`);
    const warnings = page.getByRole('list', { name: 'Warnings' });
    await warnings.getByText(`credential not set by the proxy for ${hostile}`).waitFor();
    const denied = page.getByRole('list', { name: 'Denied hosts' });
    await denied.waitFor();
    const text = (await denied.textContent()) ?? '';
    expect(text).toContain('POST api.example.test');
    expect(text).toContain('method not allowed (allowed: GET, HEAD, OPTIONS)');
    expect(text).toContain(`internet.methods: [GET, HEAD, OPTIONS, POST] (add POST; ${hostile})`);
    expect(await page.locator('.denied img, .warnings img').count()).toBe(0);
    expect(await page.evaluate<string>('String(window.__pwnWarning)')).toBe('undefined');
    await browser.screenshots('task-denied-hosts');
  });

  it("a running attempt: the command (or the agent's tool call) it is on and the changed files so far, hostile names as text", async () => {
    const { page } = browser;
    const now = new Date().toISOString();
    const hostile = '<img src=x onerror=window.__pwnLiveFile=1>';
    await store.createTask(
      {
        id: 'task_running',
        environmentId,
        prompt: 'p',
        command: 'make',
        ref: {},
        repository: null,
        attemptCount: 1,
        status: 'running',
        createdAt: now,
        updatedAt: now,
      },
      [
        {
          id: 'att_running',
          taskId: 'task_running',
          index: 0,
          phase: 'agent',
          cacheHit: false,
          error: null,
          result: null,
          createdAt: now,
          startedAt: now,
          finishedAt: null,
        } as unknown as Attempt,
      ],
    );
    await store.appendAttemptEvents([
      { attemptId: 'att_running', seq: 1, at: now, type: 'phase', phase: 'agent' },
      {
        attemptId: 'att_running',
        seq: 2,
        at: now,
        type: 'command_start',
        command: `make ${hostile}`,
        phase: 'agent',
      },
      {
        attemptId: 'att_running',
        seq: 3,
        at: now,
        type: 'files',
        files: [
          { path: `${hostile}.txt`, added: 2, removed: 0, binary: false },
          { path: 'src/main.c', added: 5, removed: 1, binary: false },
        ],
        total: 2,
      },
    ] as never);
    await page.goto(`${server.url}/tasks/task_running`);
    const current = page.getByRole('status', { name: 'Current command' });
    await current.getByText(`make ${hostile}`).waitFor();
    const soFar = page.getByRole('region', { name: 'Changed so far' });
    await soFar.getByText('Changed so far: 2 files').waitFor();
    expect(await soFar.textContent()).toContain(`${hostile}.txt +2 −0`);
    expect(await soFar.textContent()).toContain('src/main.c +5 −1');
    // A later listing replaces the list, live.
    await store.appendAttemptEvents([
      {
        attemptId: 'att_running',
        seq: 4,
        at: new Date().toISOString(),
        type: 'files',
        files: [{ path: 'src/main.c', added: 6, removed: 1, binary: false }],
        total: 1,
      },
    ] as never);
    await soFar.getByText('Changed so far: 1 file').waitFor({ timeout: 10_000 });
    // The model agent's tool call it is on shows the same way.
    await store.appendAttemptEvents([
      {
        attemptId: 'att_running',
        seq: 5,
        at: new Date().toISOString(),
        type: 'tool_call',
        turn: 1,
        callId: 'call_1',
        tool: 'shell',
        arguments: `{"command":["bash","-c","cat ${hostile}"]}`,
      },
    ] as never);
    await current.getByText(`shell {"command":["bash","-c","cat ${hostile}"]}`).waitFor({
      timeout: 10_000,
    });
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate<string>('String(window.__pwnLiveFile)')).toBe('undefined');
  });
});
