/**
 * Needs Docker and root (iptables). Creates an `--internal` network, a listener standing for the
 * proxy and a canary on the host's bridge address, and shows that with the firewall installed a
 * container on that network reaches the proxy port and nothing else; without it, it reaches the
 * canary (so the test would fail if the firewall did nothing).
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IptablesFirewall,
  type SandboxNetworkFirewallSpec,
} from '../../src/adapters/firewall/iptables-firewall.js';

import { testImage } from './runtime-test-image.js';

/** Any image with bash works; the experiments image is the fallback until Berth's images are built. */
async function probeImage(): Promise<string> {
  try {
    return await testImage();
  } catch {
    return 'berth-debian:bookworm';
  }
}

function run(
  argv: string[],
  timeoutMs = 60_000,
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

const id = randomBytes(4).toString('hex');
const name = `berth-fwtest-${id}`;
const bridge = `bfw${id}`;
let spec: SandboxNetworkFirewallSpec;
const firewall = new IptablesFirewall();
const servers: net.Server[] = [];
const canaryHits: number[] = [];
/** DNS queries that reached the host's bridge address (a resolver the sandbox could use to exfiltrate). */
const dnsQueries: string[] = [];
let dnsCanary: dgram.Socket | undefined;
let proxyPort = 0;
let canaryPort = 0;

function listen(
  host: string,
  onConnection: (s: net.Socket) => void,
): Promise<{ server: net.Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = net.createServer(onConnection);
    server.once('error', reject);
    server.listen(0, host, () =>
      resolve({ server, port: (server.address() as net.AddressInfo).port }),
    );
  });
}

async function probeFromSandbox(gateway: string): Promise<string> {
  const tcp = [proxyPort, canaryPort]
    .map(
      (p) =>
        `if timeout 3 bash -c 'exec 3<>/dev/tcp/${gateway}/${p}' 2>/dev/null; then echo "${p} open"; else echo "${p} closed"; fi`,
    )
    .join('; ');
  // Docker's embedded resolver forwards from the container's namespace to the --dns server.
  const script = `${tcp}; timeout 4 getent hosts exfil-${id}.test >/dev/null; echo dns-done`;
  const result = await run([
    'docker',
    'run',
    '--rm',
    '--network',
    name,
    '--dns',
    gateway,
    '--label',
    'berth.test=egress-firewall',
    await probeImage(),
    'bash',
    '-c',
    script,
  ]);
  expect(result.stderr).not.toMatch(/Unable to find image|No such image/);
  return result.stdout;
}

describe('IptablesFirewall on a real Docker network (docker)', () => {
  let gateway = '';

  beforeAll(async () => {
    const created = await run([
      'docker',
      'network',
      'create',
      '--internal',
      '--label',
      'berth.test=egress-firewall',
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
    const proxy = await listen(gateway, (s) => {
      s.on('error', () => undefined);
      s.end('proxy\n');
    });
    const canary = await listen(gateway, (s) => {
      s.on('error', () => undefined);
      canaryHits.push(Date.now());
      s.destroy();
    });
    servers.push(proxy.server, canary.server);
    const udp = dgram.createSocket('udp4');
    udp.on('message', (_message, remote) => dnsQueries.push(remote.address));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(53, gateway, () => resolve());
    });
    dnsCanary = udp;
    proxyPort = proxy.port;
    canaryPort = canary.port;
    spec = { networkId: id, bridge, subnet, proxyAddress: gateway, proxyPort };
  });

  afterAll(async () => {
    if (spec !== undefined) await firewall.remove(spec);
    for (const s of servers) s.close();
    dnsCanary?.close();
    await run(['docker', 'network', 'rm', name]);
  });

  it('without the firewall the canary port and a resolver on the host are reachable (control)', async () => {
    const out = await probeFromSandbox(gateway);
    expect(out).toContain(`${canaryPort} open`);
    expect(canaryHits.length).toBe(1);
    expect(dnsQueries.length).toBeGreaterThan(0);
  });

  it('with the firewall only the proxy port is reachable (no DNS either), and installing twice changes nothing', async () => {
    canaryHits.length = 0;
    dnsQueries.length = 0;
    await firewall.install(spec);
    const before = (await run(['iptables', '-S'])).stdout;
    await firewall.install(spec);
    expect((await run(['iptables', '-S'])).stdout).toBe(before);
    expect(await firewall.isInstalled(spec)).toBe(true);
    const out = await probeFromSandbox(gateway);
    expect(out).toContain(`${proxyPort} open`);
    expect(out).toContain(`${canaryPort} closed`);
    expect(canaryHits).toEqual([]);
    expect(out).toContain('dns-done');
    expect(dnsQueries).toEqual([]);
  });

  it('removal deletes every rule it added', async () => {
    await firewall.remove(spec);
    expect(await firewall.isInstalled(spec)).toBe(false);
    const rules = (await run(['iptables', '-S'])).stdout + (await run(['ip6tables', '-S'])).stdout;
    expect(rules).not.toContain(`berth:${id}`);
    expect(rules).not.toContain(`BERTH-${id.toUpperCase()}`);
  });
});
