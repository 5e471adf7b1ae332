import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IptablesFirewall } from '../../src/adapters/firewall/iptables-firewall.js';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import { cleanUpInstance, loopbackEgress, startCanary, type Canary } from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';
import { OpenAiCompatibleModel } from '../../src/adapters/model/openai-compatible-model.js';
import { FakeModelServer, lastToolResult } from '../support/fake-model-server.js';
import { answer, shell } from '../support/scripted-turns.js';

/**
 * Internet lockdown through the real lifecycle (`berth run` → runLocal → EgressEnforcer) on a
 * real Docker engine (needs root for the firewall). The "outside world" is an HTTP server on the
 * host's loopback that the proxy reaches under the test names `allowed.test`/`denied.test`
 * (egress host map + an address allowance for 127.0.0.0/8); a canary on every host address
 * records any direct connection. No packet leaves the machine.
 */

const instance = `egtest-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let server: http.Server;
let serverPort = 0;
let tlsServer: https.Server;
let tlsPort = 0;
/** The "public" CA of the test world: the proxy trusts it for upstreams (like BERTH_EXTRA_CA_FILES). */
let worldCa: CertificateAuthority;
const requests: string[] = [];
let canary: Canary;
/** Host addresses a sandbox tries to reach directly (space-separated). */
let hostAddresses = '';

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-lockdown-'));
  server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.headers.host} ${req.url}`);
    res.end(`hello from ${req.headers.host}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverPort = (server.address() as net.AddressInfo).port;
  worldCa = await CertificateAuthority.create({ commonName: 'egress lockdown test world' });
  const leaf = await worldCa.leafFor('allowed.test');
  tlsServer = https.createServer(
    { cert: leaf.certificatePem, key: leaf.privateKeyPem },
    (req, res) => {
      requests.push(`TLS ${req.method} ${req.headers.host} ${req.url}`);
      res.statusCode = 404;
      res.end('no repository here\n');
    },
  );
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  tlsPort = (tlsServer.address() as net.AddressInfo).port;
  canary = await startCanary();
  // The host's own addresses: Docker's default bridge and the host's outward interfaces (a
  // connection to them stays on this machine).
  const docker0 = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(
    execFileSync('ip', ['-4', '-o', 'addr', 'show', 'docker0'], { encoding: 'utf8' }),
  )?.[1];
  const outward = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined && i.family === 'IPv4' && !i.internal)
    .map((i) => i?.address ?? '');
  hostAddresses = [...new Set([docker0 ?? '', ...outward].filter((a) => a !== ''))].join(' ');
});

afterAll(() => {
  server?.close();
  tlsServer?.close();
  canary?.close();
  cleanUpInstance(instance, work, repo.dir);
});

function envFile(name: string, internet: string, extra = ''): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nrepository: ${repo.dir}\nimage: minimal\ninternet: ${internet}\n${extra}`,
  );
  return file;
}

const base = () => ({
  dataDir: join(work, 'data'),
  instance,
  resolveImage: () => image,
  egress: loopbackEgress(
    ['allowed.test', 'denied.test', 'mirror.test'],
    [serverPort, tlsPort],
    [worldCa.certificatePem],
  ),
});

/** The agent-phase command: fetches through the proxy variables (perl's HTTP::Tiny honours them), then tries direct routes. */
const probe = () =>
  [
    `fetch() { perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 10)->get($ARGV[0]); print "$r->{status} $r->{content}"' "$1"; echo; }`,
    `echo "allowed: $(fetch http://allowed.test:${serverPort}/a)"`,
    `echo "denied: $(fetch http://denied.test:${serverPort}/d)"`,
    `echo "mirror: $(fetch http://mirror.test:${serverPort}/m)"`,
    `echo "post: $(perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 10)->post_form($ARGV[0], { a => 1 }); print "$r->{status} $r->{content}"' http://allowed.test:${serverPort}/p)"`,
    // HTTPS through the proxy: git trusts the proxy's CA through the variables Berth sets.
    `echo "git: $(timeout 30 git ls-remote https://allowed.test:${tlsPort}/repo.git 2>&1 | head -3)"`,
    'proxy=${HTTP_PROXY#http://}; gw=${proxy%:*}; echo "proxy=${proxy:-none}"',
    `for target in "$gw" ${hostAddresses} 127.0.0.1; do`,
    `  [ -n "$target" ] || continue`,
    `  if timeout 3 bash -c "exec 3<>/dev/tcp/$target/${canary.port}" 2>/dev/null; then echo "direct $target: open"; else echo "direct $target: closed"; fi`,
    `done`,
    `echo "keys=$(grep -rls 'PRIVATE KEY' /etc /usr/local/share/ca-certificates 2>/dev/null | wc -l)"`,
    `echo "routes=$(awk 'NR>1' /proc/net/route | wc -l)"`,
  ].join('\n');

function firewallChainOf(attemptId: string): string {
  return `BERTH-${createHash('sha256').update(attemptId).digest('hex').slice(0, 12).toUpperCase()}`;
}

describe('internet lockdown through the egress proxy (docker)', () => {
  it('allowlist: allowed names pass through the proxy, others get its 403, nothing else is reachable', async () => {
    requests.length = 0;
    const run = await runJson({
      ...base(),
      envFile: envFile(
        'eg-allowlist',
        '{ access: allowlist, presets: [common-dependencies], domains: [allowed.test], methods: [GET, HEAD] }',
        // The image's apt sources name the mirror: the preset allows it, read at lockdown.
        `setup: echo "deb http://mirror.test:${serverPort}/debian bookworm main" > /etc/apt/sources.list.d/berth-test.list\n`,
      ),
      command: probe(),
    });
    expect(run.code, run.stderr).toBe(0);
    const attempt = run.result.attempts[0];
    const output = attempt?.commands[0]?.output ?? '';
    expect(output).toContain(`allowed: 200 hello from allowed.test:${serverPort}`);
    expect(output).toMatch(
      /denied: 403 berth egress: GET denied\.test:\d+ denied: denied\.test is not on the allowlist/,
    );
    expect(output).toContain(`mirror: 200 hello from mirror.test:${serverPort}`);
    // Method limits: a POST is refused over plain HTTP; HTTPS is intercepted with the attempt's CA.
    expect(output).toMatch(
      /post: 403 berth egress: POST allowed\.test:\d+ denied: method not allowed \(allowed: GET, HEAD\)/,
    );
    expect(output).toMatch(/git: .*not found/);
    expect(output).not.toContain('SSL certificate problem');
    expect(output).toMatch(/proxy=\d+\.\d+\.\d+\.\d+:\d+/);
    expect(output).toMatch(/direct \d+\.\d+\.\d+\.\d+: closed/);
    expect(hostAddresses).toContain('.');
    for (const address of hostAddresses.split(' '))
      expect(output).toContain(`direct ${address}: closed`);
    expect(output).not.toContain(': open');
    expect(output).toContain('keys=0');
    expect(requests).toEqual([
      `GET allowed.test:${serverPort} /a`,
      `GET mirror.test:${serverPort} /m`,
      `TLS GET allowed.test:${tlsPort} /repo.git/info/refs?service=git-upload-pack`,
    ]);
    expect(canary.hits).toEqual([]);
    // Every decision is in the attempt's log.
    expect(run.stderr).toContain(
      `egress allowed GET allowed.test:${serverPort} (domain:allowed.test)`,
    );
    expect(run.stderr).toContain(`egress denied GET denied.test:${serverPort} (no-match)`);
    expect(run.stderr).toMatch(
      /internet allowlist: the sandbox reaches only the egress proxy at .*apt sources read/,
    );
    expect(run.stderr).toContain(`egress denied POST allowed.test:${serverPort} (method)`);
    expect(run.stderr).toContain(
      `egress allowed CONNECT allowed.test:${tlsPort} (domain:allowed.test)`,
    );
    expect(run.stderr).toContain(
      `egress allowed GET mirror.test:${serverPort} (preset:common-dependencies:mirror.test)`,
    );
    // The firewall rules went with the attempt.
    const rules = execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8' });
    expect(rules).not.toContain(firewallChainOf(attempt?.id ?? ''));
  });

  it("the model agent's command that was denied ends its tool result with the denial lines; the results list the denied hosts with a suggestion (issue 19 item 5)", async () => {
    requests.length = 0;
    const post = `perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 10)->post_form($ARGV[0], { a => 1 }); print "$r->{status}\\n"' http://allowed.test:${serverPort}/p`;
    const model = await FakeModelServer.start([
      shell(
        `${post}; ${post}; perl -MHTTP::Tiny -e 'print HTTP::Tiny->new(timeout => 10)->get($ARGV[0])->{status}, "\\n"' http://denied.test:${serverPort}/d`,
      ),
      answer('POST is not allowed here; I stopped.'),
    ]);
    try {
      const run = await runJson({
        ...base(),
        envFile: envFile(
          'eg-denials',
          '{ access: allowlist, domains: [allowed.test], methods: [GET, HEAD] }',
        ),
        prompt: 'Post the report.',
        model: new OpenAiCompatibleModel({
          baseUrl: model.baseUrl,
          apiKey: 'sk-denials',
          model: 'fake',
          maxRetries: 1,
        }),
      });
      expect(run.code, run.stderr).toBe(0);
      const result = lastToolResult(model.requests[1]);
      expect(result).toMatch(/^Exit code: 0\n[\s\S]*403\n403\n403\n/);
      expect(result.split('\n').slice(-2)).toEqual([
        `berth egress: POST allowed.test:${serverPort} denied: method not allowed (allowed: GET, HEAD)`,
        `berth egress: GET denied.test:${serverPort} denied: denied.test is not on the allowlist`,
      ]);
      expect(requests).toEqual([]);
      expect(run.result.attempts[0]?.deniedHosts).toEqual([
        {
          host: 'allowed.test',
          method: 'POST',
          reason: 'method not allowed (allowed: GET, HEAD)',
          suggestion:
            'internet.methods: [GET, HEAD, POST] (add POST; it then applies to every allowed host)',
        },
        {
          host: 'denied.test',
          method: 'GET',
          reason: 'denied.test is not on the allowlist',
          suggestion: 'internet.domains: [allowed.test, denied.test] (add "denied.test")',
        },
      ]);
    } finally {
      await model.close();
    }
  });

  it('on: every name passes (address checks still apply) and is logged', async () => {
    requests.length = 0;
    // The real firewall, reporting its IPv6 rules as skipped (as on a host without ip6tables).
    const real = new IptablesFirewall();
    const run = await runJson({
      ...base(),
      egress: {
        ...base().egress,
        firewall: {
          install: async (spec, signal) => {
            await real.install(spec, signal);
            return { ipv6Skipped: true };
          },
          remove: (spec, signal) => real.remove(spec, signal),
        },
      },
      envFile: envFile('eg-on', '{ access: "on" }'),
      command: probe(),
    });
    expect(run.code, run.stderr).toBe(0);
    const output = run.result.attempts[0]?.commands[0]?.output ?? '';
    expect(output).toContain(`allowed: 200 hello from allowed.test:${serverPort}`);
    expect(output).toContain(`denied: 200 hello from denied.test:${serverPort}`);
    expect(output).toContain(`mirror: 200 hello from mirror.test:${serverPort}`);
    expect(output).not.toContain(': open');
    expect(canary.hits).toEqual([]);
    expect(run.stderr).toContain(`egress allowed GET denied.test:${serverPort} (access:on)`);
    // A skipped IPv6 part of the firewall is said in the attempt's log.
    expect(run.stderr).toContain('ip6tables is not usable on this host');
  });

  it('a lockdown that fails halfway fails the attempt and leaves nothing behind', async () => {
    requests.length = 0;
    const removed: string[] = [];
    const run = await runJson({
      ...base(),
      egress: {
        ...base().egress,
        firewall: {
          install: () => Promise.reject(new Error('the firewall refused (test)')),
          remove: (spec) => {
            removed.push(spec.bridge);
            return Promise.resolve();
          },
        },
      },
      envFile: envFile('eg-on', '{ access: "on" }'),
      command: probe(),
    });
    expect(run.code).not.toBe(0);
    expect(run.result.attempts[0]?.status).toBe('failed');
    expect(run.stderr).toContain('the firewall refused (test)');
    // The agent never ran, the half-installed rules were removed (the network: see afterAll).
    expect(run.result.attempts[0]?.commands ?? []).toEqual([]);
    expect(removed).toHaveLength(1);
    expect(requests).toEqual([]);
  });

  it('off: no network at all, nothing reaches the proxy', async () => {
    requests.length = 0;
    const run = await runJson({
      ...base(),
      envFile: envFile('eg-off', '{ access: "off" }'),
      // Without a network every name lookup waits for its timeout: only direct routes are tried.
      command: [
        'proxy=${HTTP_PROXY#http://}; echo "proxy=${proxy:-none}"',
        'echo "interfaces=$(ls /sys/class/net | tr "\\n" " ")"',
        `for target in ${hostAddresses} 127.0.0.1; do`,
        `  if timeout 3 bash -c "exec 3<>/dev/tcp/$target/${canary.port}" 2>/dev/null; then echo "direct $target: open"; else echo "direct $target: closed"; fi`,
        'done',
        `echo "routes=$(awk 'NR>1' /proc/net/route | wc -l)"`,
      ].join('\n'),
    });
    expect(run.code, run.stderr).toBe(0);
    const output = run.result.attempts[0]?.commands[0]?.output ?? '';
    expect(output).toContain('proxy=none');
    expect(output).toContain('interfaces=lo \n');
    for (const address of hostAddresses.split(' '))
      expect(output).toContain(`direct ${address}: closed`);
    expect(output).toContain('routes=0');
    expect(output).not.toContain(': open');
    expect(requests).toEqual([]);
    expect(canary.hits).toEqual([]);
    expect(run.stderr).not.toContain('egress ');
  });
});
