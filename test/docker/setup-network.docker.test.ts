import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupNetworkIdOf } from '../../src/egress/setup-network-guard.js';
import { cleanUpInstance, hostAddresses, startCanary, type Canary } from './egress-world.js';
import {
  lifecycleTestImage,
  makeSampleRepository,
  runJson,
  writeLifecycleEnvFile,
} from './lifecycle-support.js';

/**
 * The setup network is the public internet only (issue 19 item 0), through the real lifecycle
 * (`berth run` → runLocal → AttemptRunner → SetupNetworkGuard) on a real engine, as root. Every
 * target is on this machine: a canary bound to 0.0.0.0 on the host, reached through the setup
 * network's gateway, `docker0`'s address, the host's outward addresses and a dummy interface
 * holding the metadata address (a bridge without ports: this machine has no dummy interfaces); another container on Docker's default bridge; and a second
 * address of the dummy interface, in a range refused by default, that `BERTH_SETUP_ALLOW` opens
 * (the control: the probe itself works); Azure's WireServer address (168.63.129.16, public range)
 * held by a network namespace behind a veth with a /32 route on the host, so packets to it are
 * forwarded, not delivered to the host. `BERTH_SETUP_ALLOW` also holds 172.16.0.0/12, which covers
 * Docker's pools: it must open neither the host's gateways nor the neighbour. Apart from the
 * WireServer address, held on this machine, no test here may send to a public address. No packet
 * leaves the machine.
 */

const instance = `setupnet-${process.pid}`;
const dummy = `tmd${process.pid % 100000}`;
const platformNs = `tmp${process.pid % 100000}`;
const platformVeth = `tmv${process.pid % 100000}`;
/** Azure's WireServer: a public-range platform address (in a namespace of this machine). */
const WIRESERVER = '168.63.129.16';
let platformServer: ChildProcess | undefined;
const METADATA = '169.254.169.254';
/** On the dummy interface; in 198.18.0.0/15 (benchmarking), refused unless allowed. */
const ALLOWED = '198.18.0.77';
/** Also there; opened for the locked-down phase only (`BERTH_EGRESS_ALLOW`), not for setup. */
const EGRESS_ONLY = '198.18.0.78';
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let canary: Canary;
let neighbour = '';
let neighbourAddress = '';
/** The host's own addresses (docker0 first), read before the test's interface exists. */
let host: string[] = [];
const NEIGHBOUR_PORT = 8080;

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-setup-network-'));
  canary = await startCanary();
  host = hostAddresses();
  execFileSync('ip', ['link', 'add', dummy, 'type', 'bridge']);
  for (const address of [METADATA, ALLOWED, EGRESS_ONLY])
    execFileSync('ip', ['addr', 'add', `${address}/32`, 'dev', dummy]);
  execFileSync('ip', ['link', 'set', dummy, 'up']);
  const ip = (...args: string[]) => execFileSync('ip', args);
  ip('netns', 'add', platformNs);
  ip('link', 'add', `${platformVeth}a`, 'type', 'veth', 'peer', 'name', `${platformVeth}b`);
  ip('link', 'set', `${platformVeth}b`, 'netns', platformNs);
  ip('addr', 'add', '10.254.77.1/30', 'dev', `${platformVeth}a`);
  ip('link', 'set', `${platformVeth}a`, 'up');
  const inNs = (...args: string[]) => ip('netns', 'exec', platformNs, 'ip', ...args);
  inNs('addr', 'add', '10.254.77.2/30', 'dev', `${platformVeth}b`);
  inNs('addr', 'add', `${WIRESERVER}/32`, 'dev', `${platformVeth}b`);
  inNs('link', 'set', `${platformVeth}b`, 'up');
  inNs('link', 'set', 'lo', 'up');
  inNs('route', 'add', 'default', 'via', '10.254.77.1');
  ip('route', 'add', `${WIRESERVER}/32`, 'dev', `${platformVeth}a`);
  platformServer = spawn(
    'ip',
    [
      'netns',
      'exec',
      platformNs,
      'perl',
      '-MIO::Socket::INET',
      '-e',
      `$s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => ${NEIGHBOUR_PORT}, Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) { print $c "wire\n"; close $c }`,
    ],
    { stdio: 'ignore' },
  );
  // Another container (standing for another sandbox) on Docker's default bridge, listening.
  neighbour = docker(
    'run',
    '-d',
    '--rm',
    '--label',
    `berth-test=${instance}`,
    '--entrypoint',
    'perl',
    image,
    '-MIO::Socket::INET',
    '-e',
    `$s = IO::Socket::INET->new(LocalPort => ${NEIGHBOUR_PORT}, Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) { print $c "hi\\n"; close $c }`,
  );
  neighbourAddress = docker(
    'inspect',
    '-f',
    '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
    neighbour,
  );
  // Control: the neighbour and the platform address answer from the host.
  for (const address of [neighbourAddress, WIRESERVER]) {
    for (let i = 0; i < 50 && !(await connects(address, NEIGHBOUR_PORT)); i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    await expect(connects(address, NEIGHBOUR_PORT)).resolves.toBe(true);
  }
}, 120_000);

afterAll(() => {
  canary?.close();
  if (neighbour !== '') docker('rm', '-f', neighbour);
  execFileSync('ip', ['link', 'del', dummy], { stdio: 'ignore' });
  platformServer?.kill();
  execFileSync('ip', ['link', 'del', `${platformVeth}a`], { stdio: 'ignore' });
  execFileSync('ip', ['netns', 'del', platformNs], { stdio: 'ignore' });
  cleanUpInstance(instance, work, repo.dir);
});

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 3000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

describe('the setup network is the public internet only (docker, root)', () => {
  it('refuses the host, the metadata and platform addresses and other containers; BERTH_SETUP_ALLOW opens a range, never the host or a container', async () => {
    const targets: Array<[string, string, number]> = [
      ['docker0', host[0] ?? '', canary.port],
      ...host
        .slice(1)
        .map((address, i): [string, string, number] => [`host-${i}`, address, canary.port]),
      ['metadata', METADATA, canary.port],
      ['neighbour', neighbourAddress, NEIGHBOUR_PORT],
      ['wireserver', WIRESERVER, NEIGHBOUR_PORT],
      ['egress-only', EGRESS_ONLY, canary.port],
      ['allowed', ALLOWED, canary.port],
    ];
    const probe = [
      'probe() { if timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then echo "$1: open"; else echo "$1: closed"; fi; }',
      // The setup network's gateway (the host's address on the attempt's bridge).
      `gw=$(awk '$2 == "00000000" { print $3 }' /proc/net/route)`,
      'gw=$(printf "%d.%d.%d.%d" 0x${gw:6:2} 0x${gw:4:2} 0x${gw:2:2} 0x${gw:0:2})',
      '{',
      `  probe gateway "$gw" ${canary.port} &`,
      ...targets.map(([name, address, port]) => `  probe ${name} ${address} ${port} &`),
      '  wait',
      '} | sort > /root/setup-probe.txt',
    ];
    const file = writeLifecycleEnvFile(
      work,
      'setup-net',
      repo.dir,
      ['setup: |', ...probe.map((line) => `  ${line}`), ''].join('\n'),
    );
    const run = await runJson({
      dataDir: join(work, 'data'),
      instance,
      resolveImage: () => image,
      envFile: file,
      command: 'cat /root/setup-probe.txt',
      // 172.16.0.0/12 covers docker0, the gateway and the neighbour: none of them opens.
      setupAllow: [`${ALLOWED}/32`, '172.16.0.0/12'],
      egress: { allow: [`${EGRESS_ONLY}/32`] },
    });
    expect(run.code, run.stderr).toBe(0);
    const attempt = run.result.attempts[0];
    const lines = (attempt?.commands[0]?.output ?? '').trim().split('\n');
    const expected = [
      'gateway: closed',
      ...targets.map(([name]) => `${name}: ${name === 'allowed' ? 'open' : 'closed'}`),
    ].sort();
    expect(lines).toEqual(expected);
    // Only the allowed address reached the canary (from the sandbox's address).
    expect(canary.hits).toHaveLength(1);
    expect(run.stderr).toContain(
      `setup network: public internet only (host, private, link-local refused; allowed: ${ALLOWED}/32`,
    );
    // The rules went with the attempt (IPv4 and IPv6).
    const id = setupNetworkIdOf(attempt?.id ?? '');
    for (const tool of ['iptables', 'ip6tables']) {
      const rules = execFileSync(tool, ['-w', '-S'], { encoding: 'utf8' });
      expect(rules).not.toContain(`berth-setup:${id}`);
      expect(rules).not.toContain(`BERTH-SI-${id.toUpperCase()}`);
    }
  }, 300_000);
});
