import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUpstreamProxyUrl } from '../../src/egress/upstream-proxy.js';
import {
  startUpstreamConnectProxy,
  type UpstreamConnectProxy,
} from '../support/upstream-connect-proxy.js';
import { cleanUpInstance, hostAddresses } from './egress-world.js';
import {
  lifecycleTestImage,
  makeSampleRepository,
  runJson,
  writeLifecycleEnvFile,
} from './lifecycle-support.js';

/**
 * Behind a corporate proxy (issue 19 item 7), through the real lifecycle (`berth run` → runLocal
 * → setup network guard, lockdown, egress proxy) on a real engine, as root. The "registry" is an
 * HTTP server on the host's loopback that only the test's corporate proxy (on docker0's address)
 * can reach, under a name the Berth server cannot resolve: a setup script (given the proxy by
 * Berth, no edits) and the locked-down agent command (through Berth's egress proxy, which goes
 * through the corporate one) both fetch from it; the agent cannot reach the corporate proxy
 * directly. No packet leaves the machine.
 */

const instance = `upproxy-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let registry: http.Server;
let registryPort = 0;
let corporate: UpstreamConnectProxy;
let proxyHost = '';

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-upstream-proxy-'));
  registry = http.createServer((req, res) => res.end(`registry ${req.url}\n`));
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  registryPort = (registry.address() as net.AddressInfo).port;
  proxyHost = hostAddresses()[0] ?? '';
  corporate = await startUpstreamConnectProxy({
    resolve: (host) => (host === 'registry.test' ? '127.0.0.1' : undefined),
    listenHost: proxyHost,
  });
});

afterAll(async () => {
  registry?.close();
  await corporate?.close();
  cleanUpInstance(instance, work, repo.dir);
});

describe('behind a corporate proxy (docker, root)', () => {
  it('setup and a locked-down command reach a registry only through the upstream proxy', async () => {
    const url = (path: string) => `http://registry.test:${registryPort}${path}`;
    const fetch = (path: string) =>
      `perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 10)->get($ARGV[0]); print "$r->{status} $r->{content}"' ${url(path)}`;
    const file = writeLifecycleEnvFile(
      work,
      'up-proxy',
      repo.dir,
      [
        'internet: { access: allowlist, domains: [registry.test] }',
        'setup: |',
        `  ${fetch('/setup')} > /root/setup-fetch.txt`,
        '',
      ].join('\n'),
    );
    const run = await runJson({
      dataDir: join(work, 'data'),
      instance,
      resolveImage: () => image,
      envFile: file,
      command: [
        'echo "setup: $(cat /root/setup-fetch.txt)"',
        `echo "agent: $(${fetch('/agent')})"`,
        `if timeout 3 bash -c "exec 3<>/dev/tcp/${proxyHost}/${corporate.port}" 2>/dev/null; then echo "direct proxy: open"; else echo "direct proxy: closed"; fi`,
      ].join('\n'),
      egress: {
        extraPorts: [registryPort],
        upstreamProxy: {
          http: parseUpstreamProxyUrl(`http://${proxyHost}:${corporate.port}`, 'HTTP_PROXY'),
          noProxy: [],
        },
      },
    });
    expect(run.code, run.stderr).toBe(0);
    const output = run.result.attempts[0]?.commands[0]?.output ?? '';
    expect(output).toContain('setup: 200 registry /setup');
    expect(output).toContain('agent: 200 registry /agent');
    expect(output).toContain('direct proxy: closed');
    expect(corporate.requests.map((r) => `${r.method} ${r.target}`)).toEqual([
      `GET ${url('/setup')}`,
      `GET ${url('/agent')}`,
    ]);
    expect(run.stderr).toContain(`upstream proxy: ${proxyHost}:${corporate.port} at ${proxyHost}`);
  }, 300_000);
});
