import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OpenAiCompatibleModel } from '../../src/adapters/model/openai-compatible-model.js';
import { ModelAgent } from '../../src/agent/model-agent.js';
import type { InternetPolicy } from '../../src/domain/environment/environment-spec.js';
import { EgressDenialLog } from '../../src/lifecycle/egress-denial-log.js';
import type { AgentContext } from '../../src/lifecycle/agent-phase.js';
import { FakeModelServer, lastToolResult } from '../support/fake-model-server.js';
import { answer, shell } from '../support/scripted-turns.js';
import {
  PROXY_ADDRESS,
  startTestProxy,
  startTestWorld,
  type TestProxy,
  type TestWorld,
} from '../egress/support/test-world.js';
import { InMemorySandbox } from './support/in-memory-sandbox.js';

/**
 * Issue 19 item 5: a command the proxy denied something ends its tool result with the denial
 * lines, once each; the attempt's denied hosts carry the change that would allow each. A real
 * egress proxy on loopback decides; its decisions reach the log as the enforcer sends them
 * (`egress` events); the commands make real requests through it; the model is scripted.
 */

const internet: InternetPolicy = {
  access: 'allowlist',
  presets: [],
  domains: ['allowed.test'],
  methods: ['GET', 'HEAD', 'OPTIONS'],
  tunnelOnly: [],
};

let world: TestWorld;
let proxy: TestProxy;
let log: EgressDenialLog;
let model: FakeModelServer | undefined;

beforeAll(async () => {
  world = await startTestWorld();
  log = new EgressDenialLog();
  proxy = await startTestProxy(world, internet, {
    withCa: false,
    // As egress-enforcer.ts does: every decision becomes an `egress` event of the attempt's log.
    onDecision: (d) =>
      log.observe({
        type: 'egress',
        host: d.host,
        port: d.port,
        method: d.method,
        scheme: d.scheme,
        allowed: d.allowed,
        rule: d.rule,
        reason: d.reason,
      }),
  });
});
afterAll(async () => {
  await proxy.proxy.close();
  await world.close();
});
afterEach(async () => {
  await model?.close();
  model = undefined;
});

/** A plain HTTP request through the proxy, as curl with http_proxy would send it. */
function through(method: string, host: string): Promise<string> {
  const url = `http://${host}:${world.httpPort}/x`;
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: PROXY_ADDRESS,
      port: proxy.port,
      method,
      path: url,
      headers: { host: `${host}:${world.httpPort}`, 'content-length': '0' },
      agent: false,
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The sandbox's commands: `req METHOD HOST …` makes those requests for real. */
const sandbox = () =>
  new InMemorySandbox({}, async (argv) => {
    const words = (argv[2] ?? '').split(' ');
    const lines: string[] = [];
    for (let i = 1; i + 1 < words.length; i += 2)
      lines.push(await through(words[i] ?? '', words[i + 1] ?? ''));
    return { exitCode: lines.some((l) => l.startsWith('403')) ? 22 : 0, output: lines.join('\n') };
  });

function context(): AgentContext {
  return {
    attemptId: 'att_denials',
    prompt: 'Post the report.',
    workdir: '/workspace',
    exec: () => Promise.reject(new Error('not used')),
    emit: () => undefined,
    signal: new AbortController().signal,
    egressDenials: () => log.watch(),
  };
}

describe('denials in the agent tool result', () => {
  it('ends the tool result with the denial lines, once each, and only the command that was denied', async () => {
    const port = world.httpPort;
    model = await FakeModelServer.start([
      shell(
        'req POST allowed.test POST allowed.test GET evil.test GET allowed.test POST allowed.test',
      ),
      shell('req GET allowed.test'),
      answer('The proxy does not allow POST; I stopped.'),
    ]);
    const agent = new ModelAgent({
      model: new OpenAiCompatibleModel({
        baseUrl: model.baseUrl,
        apiKey: 'sk-test',
        model: 'fake',
        retryBaseMs: 20,
        maxRetries: 1,
      }),
      sandbox: sandbox,
    });
    const outcome = await agent.run(context());
    expect(outcome.message).toBe('The proxy does not allow POST; I stopped.');

    const denied = lastToolResult(model.requests[1]);
    const lines = denied.split('\n');
    // The command's own output (the proxy's 403 bodies), then the denial lines, once each.
    expect(denied).toContain(
      `403 berth egress: POST allowed.test:${port} denied: method not allowed (allowed: GET, HEAD, OPTIONS)`,
    );
    expect(lines.slice(-2)).toEqual([
      `berth egress: POST allowed.test:${port} denied: method not allowed (allowed: GET, HEAD, OPTIONS)`,
      `berth egress: GET evil.test:${port} denied: evil.test is not on the allowlist`,
    ]);
    expect(lines.filter((l) => l.startsWith('berth egress: POST'))).toHaveLength(1);

    // The next command was denied nothing: its result has no denial line.
    const clean = lastToolResult(model.requests[2]);
    expect(clean).toMatch(/^Exit code: 0\n/);
    expect(clean).not.toContain('berth egress');
    expect(world.requests.map((r) => r.method)).toEqual(['GET', 'GET']);

    // The attempt's results: each denied host with the change that would allow it.
    expect(log.deniedHosts(internet)).toEqual([
      {
        host: 'allowed.test',
        method: 'POST',
        reason: 'method not allowed (allowed: GET, HEAD, OPTIONS)',
        suggestion:
          'internet.methods: [GET, HEAD, OPTIONS, POST] (add POST; it then applies to every allowed host)',
      },
      {
        host: 'evil.test',
        method: 'GET',
        reason: 'evil.test is not on the allowlist',
        suggestion: 'internet.domains: [allowed.test, evil.test] (add "evil.test")',
      },
    ]);
  });

  it('bounds the lines of one command', () => {
    const watch = log.watch();
    for (let i = 0; i < 100; i++) {
      log.observe({
        type: 'egress',
        host: `h${i}.test`,
        port: 443,
        method: 'CONNECT',
        scheme: 'connect',
        allowed: false,
        rule: 'no-match',
        reason: `h${i}.test is not on the allowlist`,
      });
    }
    const lines = watch.end();
    expect(lines).toHaveLength(21);
    expect(lines.at(-1)).toBe('berth egress: 80 more denials not listed');
  });
});
