/* global console, process, fetch, performance */
// Web UI first load: the gzip size of the JavaScript and CSS `/tasks` loads (budget 300 KB), and
// the time from navigation to the task list shown in headless Chromium on loopback (budget 1 s),
// cold (a fresh browser profile each round, signed in by cookie). Needs `npm run build:web` and
// Debian's chromium. Flags: --rounds N (default 7); --tasks N (default 0): N tasks (one attempt
// each) put in the store first, and the list counts as shown when its rows are there (the list
// shows the 100 newest). BENCH_TRACE=1 prints when each request of a round finished.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { loadConfig } from '../dist/config/config.js';
import { createLogger } from '../dist/util/logger.js';
import { startServer, WEB_UI_DIR } from '../dist/server/main.js';
import { SqliteStore } from '../dist/adapters/store/sqlite/sqlite-store.js';

const flag = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
};
const rounds = flag('--rounds', 7);
const taskCount = flag('--tasks', 0);

const assets = join(WEB_UI_DIR, 'assets');
const gzipOf = (file) => gzipSync(readFileSync(join(assets, file)), { level: 9 }).length;
let raw = 0;
let gzip = 0;
for (const file of readdirSync(assets).filter((f) => /\.(js|css)$/.test(f))) {
  const body = readFileSync(join(assets, file));
  raw += body.length;
  gzip += gzipOf(file);
  console.log(
    `${file}: ${(body.length / 1024).toFixed(1)} KB, gzip ${(gzipOf(file) / 1024).toFixed(1)} KB`,
  );
}
console.log(`all JS + CSS: ${(raw / 1024).toFixed(1)} KB, gzip ${(gzip / 1024).toFixed(1)} KB`);

const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-web-'));
const config = loadConfig(
  { dataDir, host: '127.0.0.1', port: 0, logLevel: 'error' },
  { HOME: dataDir, BERTH_EXTRA_CA_FILES: '' },
);
const server = await startServer(config, createLogger('error'));
const signIn = await fetch(`${server.url}/v1/session`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ token: server.adminToken }),
});
const cookie = /berth_session=([^;]+)/.exec(signIn.headers.get('set-cookie') ?? '')?.[1] ?? '';

if (taskCount > 0) {
  const made = await fetch(`${server.url}/v1/environments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ spec: { name: 'bench', repository: 'https://git.example.test/b.git' } }),
  });
  const environmentId = (await made.json()).id;
  const store = SqliteStore.open(dataDir);
  for (let i = 0; i < taskCount; i++) {
    const at = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
    const id = `task_bench${String(i).padStart(5, '0')}`;
    await store.createTask(
      {
        id,
        environmentId,
        prompt: `bench task ${i}: ${'a prompt of some length '.repeat(4)}`,
        command: null,
        ref: { branch: `topic-${i}` },
        repository: null,
        attemptCount: 1,
        status: 'succeeded',
        createdAt: at,
        updatedAt: at,
      },
      [
        {
          id: `att_bench${i}`,
          taskId: id,
          index: 0,
          phase: 'succeeded',
          cacheHit: true,
          error: null,
          result: null,
          createdAt: at,
          startedAt: at,
          finishedAt: at,
        },
      ],
    );
  }
  await store.close();
}
const newest = `task_bench${String(taskCount - 1).padStart(5, '0')}`;
const oldestShown = `task_bench${String(Math.max(0, taskCount - 100)).padStart(5, '0')}`;

const times = [];
for (let round = 0; round < rounds; round++) {
  const profile = mkdtempSync(join(tmpdir(), 'berth-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  await context.addCookies([{ name: 'berth_session', value: cookie, url: server.url }]);
  const page = context.pages()[0] ?? (await context.newPage());
  const fetched = new Set();
  page.on('response', (response) => {
    const match = /\/assets\/([^/?]+\.(js|css))$/.exec(response.url());
    if (match) fetched.add(match[1]);
  });
  const started = performance.now();
  if (process.env.BENCH_TRACE)
    page.on('requestfinished', (request) =>
      console.log(
        `  ${(performance.now() - started).toFixed(0)} ms ${request.url().replace(server.url, '')}`,
      ),
    );
  await page.goto(`${server.url}/tasks`);
  if (taskCount === 0) await page.getByText('No tasks.').waitFor();
  else {
    // CSS selectors: a role lookup among hundreds of links costs the measuring side time too.
    await page.locator(`a[href="/tasks/${newest}"]`).waitFor();
    await page.locator(`a[href="/tasks/${oldestShown}"]`).waitFor({ state: 'attached' });
  }
  times.push(performance.now() - started);
  if (round === 0) {
    const files = [...fetched].sort();
    const bytes = files.reduce((sum, file) => sum + gzipOf(file), 0);
    console.log(
      `first load of /tasks fetches ${files.join(', ')}: gzip ${(bytes / 1024).toFixed(1)} KB (budget 300 KB)`,
    );
  }
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(0);
console.log(
  `/tasks shown with ${taskCount} tasks in the store (cold profile, ${rounds} rounds): p50 ${at(0.5)} ms, max ${at(1)} ms (budget 1000 ms)`,
);
await server.close();
rmSync(dataDir, { recursive: true, force: true });
