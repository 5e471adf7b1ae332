/* global console, fetch, performance, setTimeout, window, document, PerformanceObserver, MutationObserver */
// Web UI task page log: a 100,000-line log opened (navigation to its last line shown) and scrolled
// to its top (budget 2 s each); the main thread while 1,000 lines a second arrive (the share of
// time in long tasks, the largest timer delay); the latency from a line printed in the sandbox to
// the open page (p50 budget 250 ms). Real server, Docker engine, minimal image, headless Chromium.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { loadConfig } from '../dist/config/config.js';
import { createLogger } from '../dist/util/logger.js';
import { startServer } from '../dist/server/main.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};

const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-weblog-'));
const repo = join(dataDir, 'repo');
execFileSync('git', ['init', '-q', '-b', 'main', repo]);
writeFileSync(join(repo, 'README.md'), '# bench\n');
execFileSync('git', ['-C', repo, 'add', '-A']);
execFileSync('git', [
  '-C',
  repo,
  '-c',
  'user.name=b',
  '-c',
  'user.email=b@b.test',
  'commit',
  '-qm',
  'init',
]);

const config = loadConfig(
  { dataDir, host: '127.0.0.1', port: 0, logLevel: 'error', allowLocalRepositories: true },
  { HOME: dataDir, BERTH_EXTRA_CA_FILES: '' },
);
const server = await startServer(config, createLogger('error'));
const api = async (method, path, body) => {
  const response = await fetch(server.url + path, {
    method,
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  if (!response.ok)
    throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
};
await api('POST', '/v1/environments', {
  spec: { name: 'bench', repository: repo, image: 'berth/minimal:latest' },
});
const submit = (command) => api('POST', '/v1/tasks', { environment: 'bench', command });
const finished = async (id) => {
  for (;;) {
    const task = await api('GET', `/v1/tasks/${id}`);
    if (!['queued', 'running'].includes(task.status)) return task;
    await sleep(250);
  }
};
const signIn = await fetch(`${server.url}/v1/session`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ token: server.adminToken }),
});
const cookie = /berth_session=([^;]+)/.exec(signIn.headers.get('set-cookie') ?? '')?.[1] ?? '';
const profile = mkdtempSync(join(tmpdir(), 'berth-bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
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

// 1. A 100,000-line log: open, then scroll to the top.
const big = await finished((await submit('seq 1 100000')).id);
console.log(`100,000-line task: ${big.status}`);
const opens = [];
const scrolls = [];
for (let round = 0; round < 3; round++) {
  const started = performance.now();
  await page.goto(`${server.url}/tasks/${big.id}`);
  const log = page.getByRole('log', { name: 'Log' });
  await log.getByText('100000', { exact: true }).waitFor({ timeout: 60_000 });
  opens.push(performance.now() - started);
  await page.getByRole('button', { name: 'Pause' }).click();
  const scrolled = performance.now();
  await log.evaluate((element) => (element.scrollTop = 0));
  await log.getByText('1', { exact: true }).waitFor();
  scrolls.push(performance.now() - scrolled);
}
console.log(
  `open to the last line: ${opens.map((t) => t.toFixed(0)).join(', ')} ms; scroll to the top: ${scrolls.map((t) => t.toFixed(0)).join(', ')} ms`,
);

// 2. Latency from the sandbox to the page, and 3. the main thread while 1,000 lines a second arrive.
const watch = async (command, seconds) => {
  const task = await submit(command);
  await page.goto(`${server.url}/tasks/${task.id}`);
  await page.getByRole('log', { name: 'Log' }).waitFor();
  await page.evaluate(() => {
    const w = window;
    w.__seen = new Map();
    w.__delays = [];
    w.__long = 0;
    w.__since = performance.now();
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) w.__long += entry.duration;
    }).observe({ type: 'longtask', buffered: false });
    const tick = () => {
      const due = performance.now() + 10;
      setTimeout(() => {
        w.__delays.push(performance.now() - due);
        tick();
      }, 10);
    };
    tick();
    const scan = () => {
      for (const line of document.querySelectorAll('.log-line')) {
        const match = /^T (\d+)$/.exec(line.textContent ?? '');
        if (match && !w.__seen.has(match[1])) w.__seen.set(match[1], Date.now() - Number(match[1]));
      }
    };
    new MutationObserver(scan).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
    });
  });
  await sleep(seconds * 1000);
  const result = await page.evaluate(() => ({
    latencies: [...window.__seen.values()],
    delays: window.__delays,
    longShare: window.__long / (performance.now() - window.__since),
    shown: document.querySelector('.log-tools .sub')?.textContent ?? '',
  }));
  await finished(task.id);
  return result;
};
const latency = await watch(
  'for i in $(seq 1 40); do echo "T $(date +%s%3N)"; sleep 0.25; done',
  14,
);
console.log(
  `sandbox line to page (${latency.latencies.length} lines): p50 ${quantile(latency.latencies, 0.5)} ms, p90 ${quantile(latency.latencies, 0.9)} ms, max ${Math.max(...latency.latencies)} ms`,
);
const flood = await watch(
  'for i in $(seq 1 100); do seq 1 100 | sed "s/^/line $i /"; sleep 0.1; done',
  14,
);
console.log(
  `1,000 lines/s for about 10 s (${flood.shown} shown by then): long tasks ${(flood.longShare * 100).toFixed(1)}% of the time; 10 ms timer delay p50 ${quantile(flood.delays, 0.5).toFixed(1)} ms, p99 ${quantile(flood.delays, 0.99).toFixed(1)} ms, max ${Math.max(...flood.delays).toFixed(1)} ms`,
);

await context.close();
rmSync(profile, { recursive: true, force: true });
await server.close();
rmSync(dataDir, { recursive: true, force: true });
