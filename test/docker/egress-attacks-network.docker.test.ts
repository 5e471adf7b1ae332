import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hostAddresses,
  hostListeningPorts,
  probeResult,
  cleanUpInstance,
  runBehindProxy,
  startCanary,
  type Canary,
} from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Network-level attacks on the lockdown from inside a real sandbox, through the real lifecycle
 * (`berth run`, policy `allowlist`): the agent phase tries to change its routes and the firewall
 * (the setup script installs iproute2 and iptables from the image's Debian mirror, while it still
 * has the internet), then checks it still has no route out, then scans the host: the egress
 * network's gateway (where the proxy listens) on ports 1–1024, every port that is listening on
 * this host (`ss -ltnH`), a canary's port and the proxy's port, and the same listening ports on
 * Docker's bridge address and the host's outward addresses. Only the proxy's port may answer.
 * A TCP canary on every host address records anything that gets through. Every address probed is
 * on this machine; the one route lookup for an outside address (`ip route get` of a documentation
 * address) sends nothing.
 */

const instance = `egattack-net-${process.pid}`;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let image: string;
let canary: Canary;
/** A container on Docker's default bridge: what the sandbox's default route would lead to. */
const neighbour = { id: '', address: '', gateway: '' };

/** The neighbour's log: one `hit <source address>` per connection it accepted. */
function neighbourHits(): string[] {
  return execFileSync('docker', ['logs', neighbour.id], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.startsWith('hit '));
}

/**
 * A TCP connect scanner for the sandbox (perl, in the `minimal` image): non-blocking connects to
 * every `address:port` argument, 1000 at a time, each batch given `wait` seconds; prints how many
 * were tried and the ones that connected.
 */
const SCANNER = String.raw`
use strict; use Socket; use Fcntl; use Time::HiRes qw(time);
my ($wait, @targets) = @ARGV;
my (@open, $tried);
while (my @batch = splice(@targets, 0, 1000)) {
  my %pending;
  for my $t (@batch) {
    my ($a, $p) = split /:/, $t;
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    fcntl($s, F_SETFL, fcntl($s, F_GETFL, 0) | O_NONBLOCK);
    connect($s, pack_sockaddr_in($p, inet_aton($a)));
    $pending{fileno $s} = [$s, $t];
    $tried++;
  }
  my $deadline = time + $wait;
  while (%pending && (my $left = $deadline - time) > 0) {
    my $w = ''; vec($w, $_, 1) = 1 for keys %pending;
    my $ready = $w;
    last if select(undef, $ready, undef, $left) <= 0;
    for my $fd (keys %pending) {
      next unless vec($ready, $fd, 1);
      my ($s, $t) = @{ delete $pending{$fd} };
      push @open, $t if unpack('i', getsockopt($s, SOL_SOCKET, SO_ERROR)) == 0;
      close $s;
    }
  }
  close $_->[0] for values %pending;
}
print "scan-tried: $tried\nscan-open: ", (@open ? join(' ', sort @open) : 'none'), "\n";
`;

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-attacks-net-'));
  canary = await startCanary();
  const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
  neighbour.id = docker(
    'run',
    '-d',
    '--rm',
    image,
    'perl',
    '-MIO::Socket::INET',
    '-e',
    '$| = 1; my $l = IO::Socket::INET->new(LocalPort => 8080, Listen => 16, ReuseAddr => 1) or die; while (my $c = $l->accept) { print "hit ", $c->peerhost, "\\n"; close $c }',
  );
  [neighbour.address = '', neighbour.gateway = ''] = docker(
    'inspect',
    '-f',
    '{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}}',
    neighbour.id,
  ).split(' ');
  // Control: the neighbour answers (from the host, whose address on the bridge is the gateway).
  for (let i = 0; i < 50 && neighbourHits().length === 0; i++) {
    await new Promise<void>((resolve) => {
      const socket = net.connect(8080, neighbour.address, () => socket.end());
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(() => {
  canary?.close();
  if (neighbour.id !== '') execFileSync('docker', ['rm', '-f', neighbour.id], { stdio: 'ignore' });
  cleanUpInstance(instance, work, repo.dir);
});

describe('network-level attacks on the lockdown from inside a sandbox (docker)', () => {
  it('cannot change its routes or the firewall, and reaches no port of the host but the proxy', async () => {
    const host = hostAddresses();
    const listening = hostListeningPorts();
    expect(listening).toContain(canary.port);
    const changes: Array<[string, string]> = [
      ['ip-route-add-default', 'ip route add default via "$gw"'],
      ['ip-route-add-half', 'ip route add 0.0.0.0/1 via "$gw"'],
      ['ip-route-del-subnet', 'ip route del "$subnet"'],
      ['ip-addr-add', 'ip addr add 172.31.255.254/32 dev "$dev"'],
      ['ip-link-add', 'ip link add berth-dummy type dummy'],
      ['iptables-list', 'iptables -S'],
      ['iptables-accept', 'iptables -I OUTPUT -j ACCEPT'],
      ['iptables-dnat', 'iptables -t nat -A OUTPUT -p tcp -j DNAT --to-destination "$gw:$port"'],
      ['iptables-legacy-accept', 'iptables-legacy -I OUTPUT -j ACCEPT'],
      ['ip6tables-accept', 'ip6tables -I OUTPUT -j ACCEPT'],
      ['sysctl-forward', 'sh -c "echo 1 > /proc/sys/net/ipv4/ip_forward"'],
      ['sysctl-ipv6', 'sh -c "echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6"'],
    ];
    const otherPorts = [...new Set([...listening, canary.port])];
    const command = [
      `cat > /tmp/scan.pl <<'PERL'${SCANNER}PERL`,
      'proxy=${HTTP_PROXY#http://}; gw=${proxy%:*}; port=${proxy##*:}; echo "proxy=$gw:$port"',
      `dev=$(ip -o -4 addr show scope global | awk '{ print $2; exit }')`,
      `subnet=$(ip -4 route show dev "$dev" | awk '{ print $1; exit }')`,
      'echo "tools: $(command -v ip) $(command -v iptables)"',
      `echo "routes-before: $(ip -4 route show | tr '\\n' ';')"`,
      ...changes.map(
        ([name, cmd]) =>
          `out=$(${cmd} 2>&1); code=$?; echo "${name}: exit=$code $(echo "$out" | tr '\\n' ' ' | cut -c1-160)"`,
      ),
      // After trying: the routing table is what Docker made, no way out.
      `echo "routes: $(ip -4 route show | tr '\\n' ';')"`,
      `echo "route-outside: $(ip route get 198.51.100.1 2>&1 | head -1)"`,
      // What the default route leads to: a container on Docker's default bridge, which the host
      // would forward to if anything let it (a local stand-in for "out").
      `if timeout 3 bash -c "exec 3<>/dev/tcp/${neighbour.address}/8080" 2>/dev/null; then echo "neighbour: open"; else echo "neighbour: closed"; fi`,
      // The gateway on ports 1-1024 and every port listening on the host; the host's other
      // addresses on the listening ports; the proxy's port as the one that must answer.
      `targets="$(for p in $(seq 1 1024) ${otherPorts.join(' ')} "$port"; do echo "$gw:$p"; done | sort -u)"`,
      `targets="$targets $(for a in ${host.join(' ')}; do for p in ${otherPorts.join(' ')} "$port"; do echo "$a:$p"; done; done)"`,
      'echo "scan-expected: $(echo $targets | wc -w)"',
      'perl /tmp/scan.pl 3 $targets',
    ].join('\n');

    const file = join(work, 'env.yaml');
    writeFileSync(
      file,
      `name: eg-attacks-network\nrepository: ${repo.dir}\nimage: minimal\n` +
        `internet: { access: allowlist, domains: [allowed.test], methods: [GET, HEAD] }\n` +
        `setup: |\n  apt-get update -qq\n  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 iptables >/dev/null\n`,
    );
    const run = await runBehindProxy({
      work,
      instance,
      envFile: file,
      command,
      image,
      egress: { hosts: { 'allowed.test': '127.0.0.1' }, upstreamCa: [] },
    });
    expect(run.code, run.stderr).toBe(0);
    const { output } = run;
    const proxy = /^proxy=(\d+\.\d+\.\d+\.\d+):(\d+)$/m.exec(output);
    expect(proxy, output).not.toBeNull();
    expect(probeResult(output, 'tools')).toBe('/usr/sbin/ip /usr/sbin/iptables');

    // Every change is refused (no NET_ADMIN; /proc/sys is read-only).
    for (const [name] of changes)
      expect(`${name}: ${probeResult(output, name)}`).toMatch(
        new RegExp(`^${name}: exit=[1-9]\\d* \\S`),
      );
    // The routes are what Docker made: the network's subnet and (Docker 20.10 does this on
    // `--internal` networks too) a default route via the gateway, which is the host itself, where
    // the firewall keeps only the proxy's port and forwards nothing.
    const gateway = proxy?.[1] ?? '';
    expect(probeResult(output, 'routes')).toBe(probeResult(output, 'routes-before'));
    for (const route of probeResult(output, 'routes')
      .split(';')
      .filter((r) => r.trim() !== ''))
      expect(route).toMatch(
        new RegExp(
          `^(default via ${gateway.replace(/\./g, '\\.')} |\\d+\\.\\d+\\.\\d+\\.\\d+/\\d+ dev )`,
        ),
      );
    expect(probeResult(output, 'route-outside')).toMatch(
      new RegExp(`unreachable|via ${gateway.replace(/\./g, '\\.')} `),
    );
    expect(probeResult(output, 'neighbour')).toBe('closed');
    expect(neighbourHits()).toEqual([`hit ${neighbour.gateway}`]);

    // The scan: everything tried, only the proxy answered; nothing reached the canary.
    expect(probeResult(output, 'scan-tried')).toBe(probeResult(output, 'scan-expected'));
    expect(Number(probeResult(output, 'scan-tried'))).toBeGreaterThan(1024);
    expect(probeResult(output, 'scan-open')).toBe(`${proxy?.[1]}:${proxy?.[2]}`);
    expect(canary.hits).toEqual([]);
  }, 300_000);
});
