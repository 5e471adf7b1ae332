/* global console, process, fetch, performance, URLSearchParams */
// Slack mention → first threaded reply: a real `berth serve` with Slack on, and a fake Slack on
// loopback (Web API + Socket Mode); the time from a mention leaving the fake Slack (a signed
// HTTP event, or a Socket Mode envelope) to Berth's threaded reply (chat.postMessage with the
// task id) reaching it, in both modes, rounds interleaved (budget: p50 at most 1 s). Each task
// is cancelled once its reply came. Flags: --rounds N (default 30). Needs the built dist/.
import { createHmac } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { WebSocketServer } from 'ws';
import { removeBenchInstance } from './bench-support.js';

const flag = (name) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const rounds = Number(flag('--rounds')) || 30;
const BIN = resolve(import.meta.dirname, '../bin/berth.js');
const INSTANCE = `bench-slack-${process.pid}`;
const SECRET = 'bench-signing-secret';
const CHANNEL = 'C0BENCH';
const root = mkdtempSync(join(tmpdir(), 'berth-bench-slack-'));

// The fake Slack: the Web API methods Berth calls, and Socket Mode's WebSocket.
let nextTs = 1;
const waiting = new Map(); // thread ts → resolve(reply text)
const sockets = new Set();
const slack = createServer((req, res) => {
  let raw = '';
  req.on('data', (c) => (raw += c));
  req.on('end', () => {
    const method = (req.url ?? '').replace(/^\/api\//, '');
    const args = Object.fromEntries(new URLSearchParams(raw));
    const answer = (body) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, ...body }));
    };
    if (method === 'auth.test') return answer({ user_id: 'UBERTH', user: 'berth', team: 'Bench' });
    if (method === 'apps.connections.open')
      return answer({ url: `ws://127.0.0.1:${slack.address().port}/socket` });
    if (method === 'chat.postMessage') {
      const done = waiting.get(args.thread_ts);
      if (done) done(String(args.text));
      return answer({ ts: `${nextTs++}.0001`, channel: args.channel });
    }
    return answer({});
  });
});
const wss = new WebSocketServer({ server: slack, path: '/socket' });
let socketReady;
const socketOpen = new Promise((r) => (socketReady = r));
wss.on('connection', (socket) => {
  sockets.add(socket);
  socket.send(JSON.stringify({ type: 'hello', num_connections: 1 }));
  socketReady();
});
await new Promise((r) => slack.listen(0, '127.0.0.1', r));
const apiUrl = `http://127.0.0.1:${slack.address().port}/api/`;

const server = spawn(
  process.execPath,
  [BIN, 'serve', '--json', '--port', '0', '--data-dir', join(root, 'data'), '--allow-local-repos'],
  {
    env: {
      ...process.env,
      BERTH_CONFIG_DIR: join(root, 'config'),
      BERTH_INSTANCE: INSTANCE,
      BERTH_LOG_LEVEL: 'warn',
      BERTH_CONCURRENCY: '1',
      // Prompts are accepted; the tasks are cancelled before any asks this (closed) port.
      BERTH_MODEL_BASE_URL: 'http://127.0.0.1:9/v1',
      BERTH_MODEL: 'bench',
      BERTH_SLACK_BOT_TOKEN: 'xoxb-bench',
      BERTH_SLACK_APP_TOKEN: 'xapp-bench',
      BERTH_SLACK_SIGNING_SECRET: SECRET,
      BERTH_SLACK_API_URL: apiUrl,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const { url, adminToken } = JSON.parse(
  await new Promise((r) => createInterface({ input: server.stdout }).once('line', r)),
);
const api = async (method, path, body) => {
  const response = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (response.status >= 300) throw new Error(`${method} ${path}: ${await response.text()}`);
  return response.status === 204 ? undefined : response.json();
};

let seq = 0;
function mention() {
  seq++;
  const ts = `${1700000000 + seq}.000100`;
  return {
    ts,
    body: {
      type: 'event_callback',
      team_id: 'T0BENCH',
      event_id: `EvBench${process.pid}x${seq}`,
      event_time: Math.floor(Date.now() / 1000),
      event: {
        type: 'app_mention',
        channel: CHANNEL,
        user: 'U0BENCH',
        text: '<@UBERTH> fix the flaky test',
        ts,
        event_ts: ts,
      },
    },
  };
}

async function once(mode) {
  const { ts, body } = mention();
  const replied = new Promise((r) => waiting.set(ts, r));
  const started = performance.now();
  if (mode === 'http') {
    const text = JSON.stringify(body);
    const stamp = Math.floor(Date.now() / 1000);
    const signature = `v0=${createHmac('sha256', SECRET).update(`v0:${stamp}:${text}`).digest('hex')}`;
    const response = await fetch(`${url}/v1/integrations/slack/events`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-slack-signature': signature,
        'x-slack-request-timestamp': String(stamp),
      },
      body: text,
    });
    if (response.status !== 200) throw new Error(`event answered ${response.status}`);
  } else {
    const envelope = JSON.stringify({
      envelope_id: `e${seq}`,
      type: 'events_api',
      payload: body,
      accepts_response_payload: false,
    });
    for (const socket of sockets) socket.send(envelope);
  }
  const reply = await replied;
  const ms = performance.now() - started;
  waiting.delete(ts);
  const taskId = /task_[A-Za-z0-9]+/.exec(reply)?.[0];
  if (!taskId) throw new Error(`the reply has no task id: ${reply}`);
  await api('POST', `/v1/tasks/${taskId}/cancel`);
  return ms;
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
};

try {
  await api('POST', '/v1/environments', {
    spec: {
      name: 'bench',
      repository: join(root, 'no-such-repository'),
      image: 'berth/minimal:latest',
      triggers: { slack: { channels: [CHANNEL], anyone: true } },
    },
  });
  await socketOpen;
  const times = { http: [], socket: [] };
  await once('http'); // warm up both paths
  await once('socket');
  const loadBefore = loadavg()[0];
  for (let round = 0; round < rounds; round++) {
    times.http.push(await once('http'));
    times.socket.push(await once('socket'));
  }
  console.log(
    `${cpus().length} cores, ${process.version}, ${rounds} rounds, load average ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after`,
  );
  for (const mode of ['http', 'socket']) {
    const t = times[mode];
    console.log(
      `${mode === 'http' ? 'Events API (HTTP)' : 'Socket Mode'.padEnd(17)}  p50 ${quantile(t, 0.5).toFixed(0).padStart(4)} ms  p95 ${quantile(t, 0.95).toFixed(0).padStart(4)} ms  max ${Math.max(
        ...t,
      )
        .toFixed(0)
        .padStart(4)} ms`,
    );
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  for (const socket of sockets) socket.terminate();
  wss.close();
  slack.close();
  slack.closeAllConnections();
  try {
    removeBenchInstance(INSTANCE);
  } catch {
    // no engine: nothing to remove
  }
  rmSync(root, { recursive: true, force: true });
}
