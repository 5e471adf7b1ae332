import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpInstance, loopbackEgress, startCanary, type Canary } from './egress-world.js';
import { startToolsWorld, WORLD_HOSTS, type ToolsWorld } from './egress-tools-world.js';
import { lifecycleTestImage, runJson } from './lifecycle-support.js';

/**
 * The everyday tools work through the egress proxy out of the box (issue 5, build item 6):
 * `curl`, `git clone`, `npm install`, `pip download` and Node's `https.get`, run from inside a
 * locked-down sandbox through the real lifecycle (`berth run` → runLocal → EgressEnforcer) on a
 * real Docker engine, with only the variables and files Berth sets at lockdown.
 *
 * The outside world is one HTTPS server on the host's loopback (egress-tools-world.ts) answering
 * for `files.test`, `git.test` (dumb HTTP repository), `npm.test` (registry: packument + tarball
 * from `npm pack`) and `pypi.test` (PEP 503 index + a wheel built in the test). The proxy reaches
 * it through the egress host map and trusts its CA as an upstream CA (like BERTH_EXTRA_CA_FILES);
 * the setup script puts the same CA into the sandbox's system store, as an image built on a host
 * with that extra CA would have it. No packet leaves the machine: the setup installs curl and pip
 * from the image's Debian mirror (full internet is the setup's right), every tool in the agent
 * phase talks only to the test names.
 *
 * Three policies: allowlist (HTTPS tunnelled), allowlist with methods GET/HEAD/OPTIONS (HTTPS
 * intercepted with the attempt's CA, each request checked), and the same with every test host
 * `tunnelOnly`. Each tool's success is proven by the world having served its request and the
 * attempt's log naming the host in an allowed decision.
 */

const instance = `egtools-${process.pid}`;
let image: string;
let world: ToolsWorld;
let canary: Canary;
let work: string;
let repoDir: string;

beforeAll(async () => {
  image = lifecycleTestImage();
  world = await startToolsWorld();
  canary = await startCanary();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-tools-'));
  // The project: its .npmrc names the registry (as a project using a private registry would).
  repoDir = join(work, 'repo');
  const git = (...args: string[]) =>
    execFileSync(
      'git',
      ['-C', repoDir, '-c', 'user.name=Test', '-c', 'user.email=test@berth.example', ...args],
      { encoding: 'utf8' },
    );
  execFileSync('git', ['init', '-q', '-b', 'main', repoDir]);
  writeFileSync(join(repoDir, '.npmrc'), `registry=https://npm.test:${world.port}/\n`);
  writeFileSync(
    join(repoDir, 'package.json'),
    `${JSON.stringify({ name: 'tools-probe', version: '1.0.0', private: true }, null, 2)}\n`,
  );
  writeFileSync(join(repoDir, '.gitignore'), 'node_modules/\n');
  git('add', '-A');
  git('commit', '-qm', 'probe project');
});

afterAll(() => {
  world?.close();
  canary?.close();
  cleanUpInstance(instance, work);
});

function envFile(internet: string): string {
  const file = join(work, 'tools.yaml');
  const pem = world.ca.certificatePem
    .trim()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  // One environment (one cache entry, one setup) whose internet policy changes between runs.
  writeFileSync(
    file,
    [
      'name: eg-tools',
      `repository: ${repoDir}`,
      'image: minimal',
      'versions: { node: "22" }',
      `internet: ${internet}`,
      'setup: |',
      '  cat > /usr/local/share/ca-certificates/berth-test-world.crt <<"PEM"',
      pem,
      '  PEM',
      '  update-ca-certificates >/dev/null',
      '  export DEBIAN_FRONTEND=noninteractive',
      '  apt-get update -qq',
      '  apt-get install -y -qq --no-install-recommends curl python3-pip >/dev/null',
      '',
    ].join('\n'),
  );
  return file;
}

const base = () => ({
  dataDir: join(work, 'data'),
  instance,
  resolveImage: () => image,
  egress: loopbackEgress(WORLD_HOSTS, [world.port], [world.ca.certificatePem]),
});

/** The agent-phase command: each tool once, with nothing but what the sandbox was given. */
function probe(): string {
  const p = world.port;
  const nodeGet = [
    `require('https').get('https://files.test:${p}/node', (r) => {`,
    `let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(r.statusCode, b.trim()));`,
    `}).on('error', (e) => console.log('error', e.code || '', e.message));`,
  ].join(' ');
  const nodeFetch = `fetch('https://files.test:${p}/fetch').then(async (r) => console.log(r.status, (await r.text()).trim()), (e) => console.log('error', e.cause?.code ?? '', e.message))`;
  return [
    'echo "node-version: $(node --version)"',
    `echo "curl: $(curl -sS --max-time 30 https://files.test:${p}/x 2>&1)"`,
    `echo "git: $(timeout 60 git clone -q https://git.test:${p}/repo.git /tmp/clone 2>&1 && cat /tmp/clone/README)"`,
    // The smart protocol (what forges speak) fetches with a POST.
    `echo "smart git: $(timeout 60 git clone -q https://git.test:${p}/smart/repo.git /tmp/smart 2>&1 && cat /tmp/smart/README)"`,
    `timeout 120 npm install --no-audit --no-fund --fetch-retries=0 ${world.npmPackage.name} >/tmp/npm.log 2>&1; rc=$?`,
    // Node's own warnings (NODE_USE_ENV_PROXY's "EnvHttpProxyAgent is experimental") go to stderr.
    `echo "npm: $rc $(node -e "console.log(require('${world.npmPackage.name}'))" 2>/tmp/node.err)"; [ $rc = 0 ] || tail -20 /tmp/npm.log /tmp/node.err`,
    `timeout 120 python3 -m pip download --no-deps --disable-pip-version-check -d /tmp/dl --index-url https://pypi.test:${p}/simple/ ${world.pyPackage.name} >/tmp/pip.log 2>&1; rc=$?`,
    `echo "pip: $rc $(ls /tmp/dl 2>&1)"; [ $rc = 0 ] || tail -20 /tmp/pip.log`,
    `echo "node: $(timeout 30 node -e "${nodeGet.replace(/"/g, '\\"')}" 2>/tmp/node.err)"; cat /tmp/node.err`,
    `echo "fetch: $(timeout 30 node -e "${nodeFetch}" 2>/tmp/node.err)"; cat /tmp/node.err`,
    // Nothing went around the proxy.
    `proxy=\${HTTP_PROXY#http://}; gw=\${proxy%:*}`,
    `if timeout 3 bash -c "exec 3<>/dev/tcp/$gw/${canary.port}" 2>/dev/null; then echo "direct: open"; else echo "direct: closed"; fi`,
  ].join('\n');
}

const policies = [
  ['tunnelled', '{ access: allowlist, domains: [files.test, git.test, npm.test, pypi.test] }'],
  [
    'intercepted (methods GET, HEAD, OPTIONS)',
    '{ access: allowlist, domains: [files.test, git.test, npm.test, pypi.test], methods: [GET, HEAD, OPTIONS] }',
  ],
  [
    'tunnel-only hosts with method limits',
    '{ access: allowlist, domains: [files.test, git.test, npm.test, pypi.test], methods: [GET, HEAD, OPTIONS], tunnelOnly: [files.test, git.test, npm.test, pypi.test] }',
  ],
] as const;

describe('curl, git, npm, pip and node through the egress proxy (docker)', () => {
  it.each(policies)(
    '%s',
    async (mode, internet) => {
      world.requests.length = 0;
      const run = await runJson({ ...base(), envFile: envFile(internet), command: probe() });
      expect(run.code, run.stderr).toBe(0);
      const output = run.result.attempts[0]?.commands[0]?.output ?? '';
      const p = world.port;
      expect(output, output).toMatch(/^node-version: v22\./m);
      expect(output, output).toContain('curl: file /x served to curl/');
      expect(output, output).toContain('git: cloned through the egress proxy');
      if (mode.startsWith('intercepted')) {
        // Method limits without POST: the smart protocol's fetch is refused (docs/internet.md).
        expect(output, output).toMatch(/smart git: .*403/);
        expect(run.stderr).toContain(`egress denied POST git.test:${p} (method)`);
        expect(world.requests).not.toContain('git.test POST /smart/repo.git/git-upload-pack');
      } else {
        expect(output, output).toContain('smart git: cloned through the egress proxy');
        expect(world.requests).toContain('git.test POST /smart/repo.git/git-upload-pack');
      }
      expect(output, output).toContain(`npm: 0 tiny npm package ${world.npmPackage.version}`);
      expect(output, output).toContain(`pip: 0 ${world.pyPackage.wheel}`);
      expect(output, output).toContain('node: 200 file /node served to');
      expect(output, output).toContain('fetch: 200 file /fetch served to node');
      expect(output).toContain('direct: closed');
      expect(canary.hits).toEqual([]);

      // The world served each tool, and every request came through the proxy's allowed decisions.
      expect(world.requests).toContain('files.test GET /x');
      expect(world.requests).toContain('files.test GET /node');
      expect(world.requests).toContain('files.test GET /fetch');
      expect(world.requests).toContain('git.test GET /repo.git/HEAD');
      expect(world.requests).toContain(`npm.test GET /${world.npmPackage.name}`);
      expect(world.requests).toContain(
        `npm.test GET /${world.npmPackage.name}/-/${world.npmPackage.name}-${world.npmPackage.version}.tgz`,
      );
      expect(world.requests).toContain(`pypi.test GET /simple/${world.pyPackage.name}/`);
      expect(world.requests).toContain(`pypi.test GET /packages/${world.pyPackage.wheel}`);
      for (const host of WORLD_HOSTS) {
        expect(run.stderr).toContain(`egress allowed CONNECT ${host}:${p} (domain:${host})`);
        const checked = `egress allowed GET ${host}:${p} (domain:${host})`;
        // Intercepted: each request inside the tunnel is checked and logged; otherwise only the CONNECT.
        if (mode.startsWith('intercepted')) expect(run.stderr).toContain(checked);
        else expect(run.stderr).not.toContain(checked);
      }
      // Nothing else was refused.
      const denied = run.stderr.split('\n').filter((line) => line.includes('egress denied'));
      if (mode.startsWith('intercepted')) {
        expect(denied.length).toBeGreaterThan(0);
        for (const line of denied)
          expect(line).toContain(`egress denied POST git.test:${p} (method)`);
      } else {
        expect(denied).toEqual([]);
      }
    },
    600_000,
  );
});
