/**
 * The egress pieces together around a real container (needs Docker and root): an `--internal`
 * network, the firewall pinning it to the proxy, the proxy listening on the network's gateway
 * address and resolving test names to servers on the host's loopback. From inside the container
 * (bash only): an allowed request works through the proxy, a refused one gets the proxy's 403,
 * and direct connections to the host (a canary on the bridge address) get nowhere.
 * Only loopback, the bridge and the container are involved: no packet leaves the machine.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IptablesFirewall,
  type SandboxNetworkFirewallSpec,
} from '../../src/adapters/firewall/iptables-firewall.js';
import {
  startTestProxy,
  startTestWorld,
  type TestProxy,
  type TestWorld,
} from '../egress/support/test-world.js';
import { testImage } from './runtime-test-image.js';

function run(
  argv: string[],
  timeoutMs = 90_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0] ?? '', argv.slice(1), { timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({
        code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
        stdout,
        stderr,
      });
    });
  });
}

async function probeImage(): Promise<string> {
  try {
    return await testImage();
  } catch {
    return 'berth-debian:bookworm';
  }
}

const id = randomBytes(4).toString('hex');
const name = `berth-egtest-${id}`;
const bridge = `beg${id}`;
const firewall = new IptablesFirewall();
let spec: SandboxNetworkFirewallSpec | undefined;
let world: TestWorld;
let proxy: TestProxy;
let canary: net.Server;
const canaryHits: string[] = [];
let canaryPort = 0;
let gateway = '';

beforeAll(async () => {
  const created = await run([
    'docker',
    'network',
    'create',
    '--internal',
    '--label',
    'berth.test=egress-sandbox',
    '-o',
    `com.docker.network.bridge.name=${bridge}`,
    name,
  ]);
  expect(created.code, created.stderr).toBe(0);
  const inspected = await run([
    'docker',
    'network',
    'inspect',
    '-f',
    '{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}',
    name,
  ]);
  const [subnet = '', gw = ''] = inspected.stdout.trim().split(' ');
  gateway = gw;
  world = await startTestWorld();
  proxy = await startTestProxy(
    world,
    { domains: ['allowed.test', 'loopback.test'] },
    { withCa: false, listenHost: gateway },
  );
  canary = net.createServer((socket) => {
    socket.on('error', () => undefined);
    canaryHits.push(String(socket.remoteAddress));
    socket.destroy();
  });
  await new Promise<void>((resolve) => canary.listen(0, gateway, resolve));
  canaryPort = (canary.address() as net.AddressInfo).port;
  spec = { networkId: id, bridge, subnet, proxyAddress: gateway, proxyPort: proxy.port };
  await firewall.install(spec);
});

afterAll(async () => {
  if (spec !== undefined) await firewall.remove(spec);
  canary?.close();
  await proxy?.proxy.close();
  await world?.close();
  await run(['docker', 'network', 'rm', name]);
});

describe('a sandbox on a locked-down network (docker)', () => {
  it('reaches allowed hosts only through the proxy and nothing else on the host', async () => {
    const p = proxy.port;
    const script = `
      ask() { exec 3<>/dev/tcp/${gateway}/${p} || { echo "proxy unreachable"; return; }
              printf "$1" >&3; timeout 5 head -c 400 <&3 | tr -d '\\r'; exec 3>&-; echo; echo ===; }
      ask 'GET http://allowed.test:${world.httpPort}/from-sandbox HTTP/1.1\\r\\nHost: allowed.test:${world.httpPort}\\r\\nConnection: close\\r\\n\\r\\n'
      ask 'CONNECT evil-allowed.test:${world.httpsPort} HTTP/1.1\\r\\nHost: evil-allowed.test:${world.httpsPort}\\r\\n\\r\\n'
      ask 'GET http://loopback.test:${world.httpPort}/ HTTP/1.1\\r\\nHost: loopback.test:${world.httpPort}\\r\\nConnection: close\\r\\n\\r\\n'
      if timeout 3 bash -c 'exec 3<>/dev/tcp/${gateway}/${canaryPort}' 2>/dev/null; then echo "canary open"; else echo "canary closed"; fi
      echo ===
      cat /proc/net/route | awk 'NR>1 && $2=="00000000" {print "default route via " $1}'
      echo done`;
    const result = await run([
      'docker',
      'run',
      '--rm',
      '--network',
      name,
      '--label',
      'berth.test=egress-sandbox',
      await probeImage(),
      'bash',
      '-c',
      script,
    ]);
    const [allowed = '', refused = '', loopback = '', rest = ''] = result.stdout.split('===\n');
    expect(allowed).toMatch(/^HTTP\/1\.1 200/);
    expect(allowed).toContain('"url":"/from-sandbox"');
    expect(refused).toMatch(/^HTTP\/1\.1 403/);
    expect(refused).toContain('evil-allowed.test is not on the allowlist');
    expect(loopback).toMatch(/^HTTP\/1\.1 403/);
    expect(loopback).toContain('a refused loopback address');
    expect(rest).toContain('canary closed');
    expect(rest).not.toContain('default route');
    expect(result.stdout).toContain('done');
    expect(canaryHits).toEqual([]);
    expect(world.canary).toEqual([]);
    expect(world.requests.map((r) => r.url)).toEqual(['/from-sandbox']);
    expect(proxy.decisions.map((d) => `${d.host} ${d.allowed}`)).toEqual([
      'allowed.test true',
      'evil-allowed.test false',
      'loopback.test false',
    ]);
  });

  it('cannot reach another sandbox on the same network', async () => {
    const image = await probeImage();
    // Sandbox A: a listener (perl is in the minimal Debian image) that prints what connects.
    const listener = `perl -MIO::Socket::INET -e '$|=1; my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { print "connection\\n"; close $c }'`;
    const started = await run([
      'docker',
      'run',
      '-d',
      '--rm',
      '--network',
      name,
      '--label',
      'berth.test=egress-sandbox',
      image,
      'bash',
      '-c',
      listener,
    ]);
    expect(started.code, started.stderr).toBe(0);
    const other = started.stdout.trim();
    try {
      const ip = (
        await run([
          'docker',
          'inspect',
          '-f',
          `{{(index .NetworkSettings.Networks "${name}").IPAddress}}`,
          other,
        ])
      ).stdout.trim();
      expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      // Sandbox A can reach its own listener (the listener works) ...
      const self = await run([
        'docker',
        'exec',
        other,
        'bash',
        '-c',
        `sleep 1; timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' && echo reachable`,
      ]);
      expect(self.stdout).toContain('reachable');
      // ... sandbox B cannot (without the firewall it can: Docker allows traffic inside a network).
      const probe = await run([
        'docker',
        'run',
        '--rm',
        '--network',
        name,
        '--label',
        'berth.test=egress-sandbox',
        image,
        'bash',
        '-c',
        `if timeout 3 bash -c 'exec 3<>/dev/tcp/${ip}/8080' 2>/dev/null; then echo open; else echo closed; fi`,
      ]);
      expect(probe.stdout.trim()).toBe('closed');
      const logs = await run(['docker', 'logs', other]);
      expect(logs.stdout.match(/connection/g)?.length).toBe(1);
    } finally {
      await run(['docker', 'rm', '-f', other]);
    }
  });
});
