import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { SqliteStore } from '../../../src/adapters/store/sqlite/sqlite-store.js';
import { parseEnvironmentSpec } from '../../../src/domain/environment/environment-file.js';
import type { Attempt } from '../../../src/domain/task/attempt.js';
import type { Task } from '../../../src/domain/task/task.js';
import { SlackIntegration } from '../../../src/integrations/slack/slack-integration.js';
import type { SlackSettings } from '../../../src/integrations/slack/slack-settings.js';
import { PullRequestService } from '../../../src/services/pull-request-service.js';
import { TaskService } from '../../../src/services/task-service.js';
import { hashToken } from '../../../src/services/token-service.js';
import { createLogger } from '../../../src/util/logger.js';
import { FakeGitHub } from '../../support/fake-github.js';
import { makeAdderRemote, type AdderRemote } from '../../support/pull-request-support.js';
import { APP_TOKEN, BOT_TOKEN, FakeSlack, SIGNING_SECRET } from './fake-slack.js';
import { ScriptedRunner, type ScriptedOutcome } from './scripted-runner.js';

/**
 * Berth's Slack side wired as `berth serve` wires it (the integration on the task service, the
 * store, the pull request service), on a real SQLite store, with the fake Slack, the fake GitHub
 * on a real bare repository, and the scripted runner instead of Docker sandboxes.
 */

export const CHANNEL = 'C0PAYMENTS';
export const ALICE = 'U0ALICE';
export const PUBLIC_URL = 'https://berth.example.test';

export interface SlackWorld {
  slack: FakeSlack;
  github: FakeGitHub;
  store: SqliteStore;
  dataDir: string;
  bare: string;
  adder: AdderRemote;
  runner: ScriptedRunner;
  integration: SlackIntegration;
  /** Berth's HTTP address (the Events API route), in HTTP mode. */
  url: string;
  logs: string[];
  /** Stops Berth's side (the integration, its server) and starts it again on the same store. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** An agent's final message written to make Berth's pull request ping, close issues, track. */
export const HOSTILE_SUMMARY =
  'Done.\nFixes #1\nCloses acme/payments#2\nResolves https://github.com/acme/payments/issues/3\ncc @acme/everyone @octocat\n<img src="https://evil.test/beacon.png">\n![x](https://evil.test/b2.png)\n```\nFixes #4\n```';

export function scriptedOutcome(adder: AdderRemote) {
  return (task: Task, attempt: Attempt): ScriptedOutcome => {
    if (task.prompt.includes('broken setup'))
      return {
        failedIn: 'setup',
        error: {
          code: 'task_failed',
          message: 'setup script failed at line 2: `npm ci` exited with code 127',
          details: { reason: 'setup', exitCode: 127, line: 2, lineText: 'npm ci' },
        },
      };
    const followUp = attempt.followUp?.request;
    return {
      result: {
        baseCommit: adder.base,
        diff: adder.diff,
        files: [{ path: 'add.sh', added: 1, removed: 1, binary: false }],
        message: followUp
          ? `Follow-up done: ${followUp}`
          : task.prompt.includes('hostile summary')
            ? HOSTILE_SUMMARY
            : `Fixed the adder in attempt ${attempt.index + 1}. <https://evil.test|Approve> <!channel>`,
        commands: [],
        snapshotImage: `berth-snapshot:${attempt.id}`,
        verification: {
          command: 'sh test.sh',
          exitCode: 0,
          output: 'tests passed',
          passed: true,
          durationMs: 12,
          timedOut: false,
        },
      },
    };
  };
}

export async function startSlackWorld(options: {
  mode: 'http' | 'socket';
  tuning?: Partial<SlackSettings>;
}): Promise<SlackWorld> {
  const slack = await FakeSlack.start();
  const github = new FakeGitHub({ token: 'ghs-good', repositories: {} });
  await github.start();
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-slack-'));
  const bare = join(dataDir, 'payments.git');
  const adder = makeAdderRemote(bare);
  (github as unknown as { options: { repositories: Record<string, string> } }).options.repositories[
    'acme/payments'
  ] = bare;
  const store = SqliteStore.open(dataDir);
  await store.migrate();
  const now = new Date().toISOString();
  const alice = await store.createToken({
    id: 'tok_alice',
    name: 'alice',
    hash: hashToken('berth_alice'),
    admin: false,
    now,
  });
  await store.createToken({
    id: 'tok_bob',
    name: 'bob',
    hash: hashToken('berth_bob'),
    admin: false,
    now,
  });
  await store.linkSlackUser(ALICE, alice.id, now);
  await store.linkSlackUser('U0BOB', 'tok_bob', now);
  await store.createEnvironment({
    id: 'env_payments',
    spec: parseEnvironmentSpec({
      name: 'payments',
      repository: bare,
      image: 'berth/minimal:latest',
      members: ['alice'],
      verify: 'sh test.sh',
      triggers: { slack: { channels: [CHANNEL] } },
    }),
    createdByTokenId: null,
    memberTokenIds: [alice.id],
    secrets: [],
    now,
  });
  const logs: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void logs.push(line) });
  const runner = new ScriptedRunner(store, scriptedOutcome(adder));
  const tasks = new TaskService({
    store,
    runner,
    resetCache: () => Promise.resolve(0),
    agentAvailable: true,
    agentUnavailableReason: '',
    pullRequests: new PullRequestService({
      githubToken: 'ghs-good',
      githubApiUrl: github.url,
      githubRemotes: { [bare]: 'acme/payments' },
      gitAuthor: { name: 'Berth', email: 'berth@localhost' },
      allowLocalRepositories: true,
    }),
  });
  const settings: SlackSettings = {
    botToken: BOT_TOKEN,
    ...(options.mode === 'socket' ? { appToken: APP_TOKEN } : { signingSecret: SIGNING_SECRET }),
    apiUrl: slack.apiUrl,
    publicUrl: PUBLIC_URL,
    maxAttempts: 8,
    pollMs: 50,
    retries: 3,
    maxRetryTimeMs: 5_000,
    rateLimitTries: 3,
    rateLimitWaitMaxMs: 30_000,
    ...options.tuning,
  };
  let integration!: SlackIntegration;
  let server: Server | undefined;
  let url = '';
  const start = async () => {
    integration = new SlackIntegration(settings, { store, tasks, logger });
    await integration.start();
    await integration.connected;
    if (integration.handleHttp) {
      const handle = integration.handleHttp;
      server = createAdaptorServer({ fetch: (request: Request) => handle(request) }) as Server;
      await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
  };
  const stop = async () => {
    await integration.stop();
    if (server) {
      const s = server;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    }
  };
  await start();
  const world: SlackWorld = {
    slack,
    github,
    store,
    dataDir,
    bare,
    adder,
    runner,
    get integration() {
      return integration;
    },
    get url() {
      return url;
    },
    logs,
    async restart() {
      await stop();
      await start();
    },
    async close() {
      await stop();
      runner.stop();
      await store.close();
      await slack.close();
      await github.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return world;
}
