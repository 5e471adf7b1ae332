/* global console, process, fetch, performance */
// Web UI first load: the gzip size of the JavaScript and CSS `/tasks` loads (budget 300 KB), and
// the time from navigation to the task list shown in headless Chromium on loopback (budget 1 s),
// cold (a fresh browser profile each round, signed in by cookie). Needs `npm run build:web` and
// Debian's chromium. Flags: --rounds N (default 7).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { loadConfig } from '../dist/config/config.js';
import { createLogger } from '../dist/util/logger.js';
import { startServer, WEB_UI_DIR } from '../dist/server/main.js';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 7;

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
  await page.goto(`${server.url}/tasks`);
  await page.getByText('No tasks.').waitFor();
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
  `/tasks shown (cold profile, ${rounds} rounds): p50 ${at(0.5)} ms, max ${at(1)} ms (budget 1000 ms)`,
);
await server.close();
rmSync(dataDir, { recursive: true, force: true });
