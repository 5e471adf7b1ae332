import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeResult, removeInstanceLeftovers, startCanary, type Canary } from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';

/**
 * "Another sandbox", from inside a real sandbox through the real lifecycle (`berth run
 * --attempts 2`, policy `allowlist`): both attempts are locked down at the same time, each on its
 * own egress network. Each attempt's command starts listeners inside its sandbox that record every
 * connection, then waits for the test to tell it the other sandbox's addresses (every IPv4 address
 * the test saw on the other container while it ran, its setup network's included while it still
 * exists on this host, and the other network's gateway with the other attempt's proxy port).
 * It then tries them all directly (the listeners' ports and a few others), and through its own
 * proxy: CONNECT and plain HTTP to the other's address literal and to a name the test resolver
 * maps to it. Expected: nothing connects, the proxy answers 403 (an IP literal; a name resolving to
 * a private address), neither listener records anything but its own control connection over
 * 127.0.0.1, and the canary on the host records nothing.
 * The test hands the addresses over with `docker exec` (it finds the sandboxes by the instance
 * label) and only hands over addresses the host routes to one of its own bridges, so no probe can
 * leave the machine.
 */

const run = promisify(execFile);
const instance = `egattack-sbx-${process.pid}`;
const LISTEN_PORTS = [8080, 9000];
const PROBE_PORTS = [...LISTEN_PORTS, 22, 80, 443, 2375];
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let image: string;
let canary: Canary;

async function docker(...args: string[]): Promise<string> {
  return (await run('docker', args, { encoding: 'utf8', timeout: 15_000 })).stdout.trim();
}

/** Whether a file exists in a running container (false when the container is gone). */
async function hasFile(id: string, path: string): Promise<boolean> {
  try {
    await docker('exec', id, 'test', '-e', path);
    return true;
  } catch {
    return false;
  }
}

/** Writes a file into a running container, atomically (the sandbox polls for it). */
async function writeInto(id: string, path: string, text: string): Promise<void> {
  await docker(
    'exec',
    id,
    'sh',
    '-c',
    'printf %s "$1" > "$2.tmp" && mv "$2.tmp" "$2"',
    'sh',
    text,
    path,
  );
}

/** Whether this host routes `address` to one of its own Docker bridges (never out of the machine). */
async function routedToLocalBridge(address: string): Promise<boolean> {
  const route = await run('ip', ['-4', '-o', 'route', 'get', address], { encoding: 'utf8' })
    .then((r) => r.stdout)
    .catch(() => '');
  const dev = / dev (\S+)/.exec(route)?.[1] ?? '';
  return /^(bq|br-|docker)/.test(dev) && !/ via /.test(route);
}

/** The sandbox's part: listeners, the handover, the probes, and at the end what the listeners saw. */
const PROBES = String.raw`
use strict; use Socket; use Fcntl; use IO::Socket::INET;
# Direct: non-blocking connects to every address:port, 2 s in all; prints each with its outcome.
sub scan {
  my %pending;
  for my $t (@_) {
    my ($a, $p) = split /:/, $t;
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    fcntl($s, F_SETFL, fcntl($s, F_GETFL, 0) | O_NONBLOCK);
    connect($s, pack_sockaddr_in($p, inet_aton($a)));
    $pending{fileno $s} = [$s, $t];
  }
  my $deadline = time + 2;
  my %result;
  while (%pending && (my $left = $deadline - time) > 0) {
    my $w = ''; vec($w, $_, 1) = 1 for keys %pending;
    my $ready = $w;
    last if select(undef, $ready, undef, $left) <= 0;
    for my $fd (keys %pending) {
      next unless vec($ready, $fd, 1);
      my ($s, $t) = @{ delete $pending{$fd} };
      my $err = unpack('i', getsockopt($s, SOL_SOCKET, SO_ERROR));
      $result{$t} = $err == 0 ? 'open' : 'refused';
      close $s;
    }
  }
  $result{$_->[1]} = 'timeout', close $_->[0] for values %pending;
  return %result;
}
# Through the proxy: one request, the status line and the last line of the answer.
sub ask {
  my ($host, $port, $payload) = @_;
  my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or return 'no-connection';
  syswrite($s, $payload);
  my $all = '';
  eval { local $SIG{ALRM} = sub { die "timeout\n" }; alarm 2; while (sysread($s, my $buf, 65536)) { $all .= $buf } alarm 0; };
  $all =~ s/\r//g;
  my ($status) = $all =~ m{^(HTTP/1\.[01] \d{3})};
  my @lines = grep { /\S/ } split /\n/, $all;
  return $all eq '' ? 'closed' : ($status // 'no-status') . ' | ' . ($lines[-1] // '');
}
my $mode = shift @ARGV;
if ($mode eq 'scan') {
  my %r = scan(@ARGV);
  print "direct $_: $r{$_}\n" for sort keys %r;
} elsif ($mode eq 'ask') {
  my ($name, $host, $port, $payload) = @ARGV;
  print "proxy $name: ", ask($host, $port, $payload), "\n";
}
`;

/** Listeners on every port of LISTEN_PORTS; each accepted connection appends `port <- peer` to /tmp/hits. */
const LISTENERS = String.raw`
use strict; use IO::Socket::INET; use IO::Select;
my $sel = IO::Select->new;
for my $p (@ARGV) {
  $sel->add(IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $p, Listen => 16, ReuseAddr => 1) or die "listen $p: $!");
}
open(my $f, '>', '/tmp/listening'); close $f;
while (1) {
  for my $l ($sel->can_read) {
    my $c = $l->accept or next;
    open(my $h, '>>', '/tmp/hits'); print $h $l->sockport, ' <- ', $c->peerhost, "\n"; close $h;
    close $c;
  }
}
`;

const COMMAND = [
  `cat > /tmp/probes.pl <<'PERL'${PROBES}PERL`,
  `cat > /tmp/listeners.pl <<'PERL'${LISTENERS}PERL`,
  `perl /tmp/listeners.pl ${LISTEN_PORTS.join(' ')} >/tmp/listeners.log 2>&1 &`,
  'listeners=$!',
  'echo "$HTTP_PROXY" > /tmp/self-proxy',

  'proxy=${HTTP_PROXY#http://}; gw=${proxy%:*}; port=${proxy##*:}; echo "proxy=$gw:$port"',
  // The handover: the test writes the other sandbox's addresses here once both are listening.
  'for i in $(seq 1 250); do [ -s /tmp/peer ] && break; sleep 0.1; done',
  '[ -s /tmp/peer ] && . /tmp/peer; echo "peer-addresses: ${PEER_ADDRESSES:-missing}"',
  'echo "peer-proxy: ${PEER_PROXY:-missing}"; echo "peer-name: ${PEER_NAME:-missing}"',
  // Positive control: the own listeners answer over loopback (so "nothing connected" means something).
  `perl /tmp/probes.pl scan ${LISTEN_PORTS.map((p) => `127.0.0.1:${p}`).join(' ')}`,
  // Direct: every address of the other sandbox on the listeners' ports and a few others, and the
  // other network's gateway on the other attempt's proxy port.
  `targets="$(for a in $PEER_ADDRESSES; do for p in ${PROBE_PORTS.join(' ')}; do echo "$a:$p"; done; done) $PEER_PROXY"`,
  'perl /tmp/probes.pl scan $targets & scan=$!',
  // Through the own proxy: the other's address literal and a name that resolves to it.
  // (in parallel, each one line of output, at most 2 s each).
  'first=${PEER_ADDRESSES%% *}; asks=""',

  ...[
    ...[8080, 443].flatMap((p) => [
      `perl /tmp/probes.pl ask connect-ip-${p} "$gw" "$port" "CONNECT $first:${p} HTTP/1.1"$'\\r\\n'"Host: $first:${p}"$'\\r\\n\\r\\n'`,
      `perl /tmp/probes.pl ask connect-name-${p} "$gw" "$port" "CONNECT $PEER_NAME:${p} HTTP/1.1"$'\\r\\n'"Host: $PEER_NAME:${p}"$'\\r\\n\\r\\n'`,
    ]),
    `perl /tmp/probes.pl ask get-ip "$gw" "$port" "GET http://$first:8080/ HTTP/1.1"$'\\r\\n'"Host: $first:8080"$'\\r\\nConnection: close\\r\\n\\r\\n'`,
    `perl /tmp/probes.pl ask get-name "$gw" "$port" "GET http://$PEER_NAME:8080/ HTTP/1.1"$'\\r\\n'"Host: $PEER_NAME:8080"$'\\r\\nConnection: close\\r\\n\\r\\n'`,
    `perl /tmp/probes.pl ask connect-peer-proxy "$gw" "$port" "CONNECT $PEER_PROXY HTTP/1.1"$'\\r\\n'"Host: $PEER_PROXY"$'\\r\\n\\r\\n'`,
  ].map((line) => `${line} & asks="$asks $!"`),
  'wait $scan $asks',
  // Wait until the other sandbox has probed too, then report what reached the listeners.
  'touch /tmp/probed',

  'for i in $(seq 1 250); do [ -e /tmp/all-probed ] && break; sleep 0.1; done',
  'echo "all-probed: $([ -e /tmp/all-probed ] && echo yes || echo no)"',
  `echo "hits: $(sort /tmp/hits 2>/dev/null | tr '\\n' ';')"`,
  'kill $listeners',
].join('\n');

interface Seen {
  /** Every `address gateway` pair seen on the container, by network name. */
  networks: Map<string, { address: string; gateway: string }>;
}

/**
 * Watches the instance's sandboxes while the run goes on: records every address each one has,
 * hands each listening sandbox the other's addresses, then tells both when both have probed.
 */
async function coordinate(done: { value: boolean }, log: string[]): Promise<Map<string, Seen>> {
  const seen = new Map<string, Seen>();
  const handedOver = new Set<string>();
  /** Sandboxes whose listeners are up, with their own proxy's `address:port`. */
  const listening = new Map<string, string>();
  let released = false;
  /** Records the container's addresses; returns the names of the networks it is on now. */
  const record = async (id: string): Promise<string[]> => {
    const lines = await docker(
      'inspect',
      '-f',
      '{{range $n, $c := .NetworkSettings.Networks}}{{$n}} {{$c.IPAddress}} {{$c.Gateway}}\n{{end}}',
      id,
    ).catch(() => '');
    const entry = seen.get(id) ?? { networks: new Map() };
    for (const line of lines.split('\n')) {
      const [network = '', address = '', gateway = ''] = line.trim().split(' ');
      if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) entry.networks.set(network, { address, gateway });
    }
    seen.set(id, entry);
    return lines
      .split('\n')
      .map((line) => line.trim().split(' ')[0] ?? '')
      .filter((name) => name !== '');
  };
  while (!done.value) {
    const ids = (
      await docker('ps', '-q', '--no-trunc', '--filter', `label=berth.instance=${instance}`)
    )
      .split('\n')
      .filter((id) => id !== '');
    // Listening sandboxes are past their lockdown; until the handover, look at every sandbox.
    if (handedOver.size === 0) {
      await Promise.all(
        ids.map(async (id) => {
          // No `docker exec` before the sandbox has joined its egress network: until then Berth
          // may be committing it (paused), and on this engine (runc, cgroup v1) an exec started
          // into a container being frozen hangs and takes the engine's lock on it for good.
          const networks = await record(id);
          if (!networks.some((name) => name.startsWith('berth-egress-'))) return;
          const proxy = await docker(
            'exec',
            id,
            'sh',
            '-c',
            'test -e /tmp/listening && cat /tmp/self-proxy',
          ).catch(() => undefined);
          if (proxy !== undefined) listening.set(id, proxy.replace(/^http:\/\//, ''));
        }),
      );
    }
    if (listening.size === 2 && handedOver.size === 0) {
      const [first = '', second = ''] = [...listening.keys()];
      // Once more now that both run their commands (they were locked down since the last look).
      await Promise.all([record(first), record(second)]);
      const handovers: Array<[string, string]> = [];
      for (const [self, other] of [
        [first, second],
        [second, first],
      ] as const) {
        const otherSeen = [...(seen.get(other)?.networks.values() ?? [])];
        const addresses: string[] = [];
        for (const { address } of otherSeen)
          if (await routedToLocalBridge(address)) addresses.push(address);
        const otherProxy = listening.get(other) ?? '';
        const name = `peer-${other.slice(0, 12)}.peers.test`;
        peerNames.set(name, addresses[0] ?? '');
        log.push(
          `${self.slice(0, 12)} <- ${other.slice(0, 12)}: seen ${otherSeen.map((s) => s.address).join(' ')}; handed ${addresses.join(' ')} ${otherProxy}`,
        );
        handovers.push([
          self,
          `PEER_ADDRESSES="${addresses.join(' ')}"\nPEER_PROXY="${otherProxy}"\nPEER_NAME="${name}"\n`,
        ]);
        handedOver.add(self);
      }
      await Promise.all(handovers.map(([id, text]) => writeInto(id, '/tmp/peer', text)));
    }
    if (handedOver.size === 2 && !released) {
      const probed = await Promise.all([...handedOver].map((id) => hasFile(id, '/tmp/probed')));
      if (probed.every(Boolean)) {
        await Promise.all([...handedOver].map((id) => writeInto(id, '/tmp/all-probed', 'yes')));
        released = true;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return seen;
}

/** Names the proxy's test resolver maps to the other sandbox's address (filled at handover). */
const peerNames = new Map<string, string>();

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-attacks-sbx-'));
  canary = await startCanary();
});

afterAll(() => {
  canary?.close();
  const { containers, networks } = removeInstanceLeftovers(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
  expect(containers).toBe('');
  expect(networks).toBe('');
});

/** One task with two attempts running COMMAND, coordinated by the test; `allow`: the operator's allowance. */
async function runPair(
  name: string,
  setup: string,
  allow: readonly string[],
): Promise<{ run: Awaited<ReturnType<typeof runJson>>; log: string[]; seen: Map<string, Seen> }> {
  const file = join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nrepository: ${repo.dir}\nimage: minimal\n` +
      `internet: { access: allowlist, domains: ["*.peers.test"] }\n` +
      `setup: |\n  ${setup}\n`,
  );
  const done = { value: false };
  const log: string[] = [];
  const watching = coordinate(done, log);
  const run = await runJson({
    dataDir: join(work, 'data'),
    instance,
    envFile: file,
    command: COMMAND,
    attempts: 2,
    resolveImage: () => image,
    egress: {
      extraPorts: [8080],
      upstreamCa: [],
      allow,
      resolver: (host) => {
        const address = peerNames.get(host);
        if (address === undefined || address === '')
          return Promise.reject(new Error(`${host}: unknown`));
        return Promise.resolve([address]);
      },
    },
  }).finally(() => {
    done.value = true;
  });
  return { run, log, seen: await watching };
}

/** What every attempt must show: the control worked, nothing of the other sandbox was reached directly. */
function expectIsolated(output: string, context: string): { peers: string[] } {
  const proxy = /^proxy=(\d+\.\d+\.\d+\.\d+):(\d+)$/m.exec(output);
  expect(proxy, context).not.toBeNull();
  const peers = probeResult(output, 'peer-addresses').split(' ');
  expect(peers[0], context).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  // The other attempt's proxy listens on another gateway (its own network).
  const peerProxy = probeResult(output, 'peer-proxy');
  expect(peerProxy, context).toMatch(/^\d+\.\d+\.\d+\.\d+:\d+$/);
  expect(peerProxy, context).not.toBe(`${proxy?.[1]}:${proxy?.[2]}`);
  // Control: the own listeners answer over loopback.
  for (const p of LISTEN_PORTS)
    expect(probeResult(output, `direct 127.0.0.1:${p}`), context).toBe('open');
  // Direct: nothing of the other sandbox answers.
  const targets = [...peers.flatMap((a) => PROBE_PORTS.map((p) => `${a}:${p}`)), peerProxy];
  for (const t of targets)
    expect(`${t}: ${probeResult(output, `direct ${t}`)}`, context).toMatch(/: (refused|timeout)$/);
  // IP literals (the other's address, its gateway and proxy port) are refused by the proxy.
  for (const probe of ['connect-ip-8080', 'connect-ip-443', 'get-ip', 'connect-peer-proxy'])
    expect(probeResult(output, `proxy ${probe}`), context).toMatch(
      /^HTTP\/1\.[01] 403 \| .*IP literals are not allowed/,
    );
  // The listeners saw their own control connections only, and only after both had probed.
  expect(probeResult(output, 'all-probed'), context).toBe('yes');
  expect(probeResult(output, 'hits'), context).toBe(
    LISTEN_PORTS.map((p) => `${p} <- 127.0.0.1;`).join(''),
  );
  return { peers };
}

describe('another sandbox, from inside a locked-down sandbox (docker)', () => {
  it('two attempts locked down together reach none of each other’s addresses, directly or through the proxy', async () => {
    // The setup runs long enough for the test to see the building sandbox's setup address, even
    // on a loaded machine where each `docker inspect` takes a while.
    const { run, log, seen } = await runPair('eg-attacks-sandboxes', 'sleep 4', []);
    expect(run.code, run.stderr).toBe(0);
    expect(run.result.attempts).toHaveLength(2);
    // Both sandboxes were locked down on networks of their own at the same time; the one that
    // built the cache entry had a setup network too, whose address the other one was handed as
    // well while it was still on this host's bridge (since the sandbox is restarted after setup,
    // it may be gone by the time the other attempt looks: two or three addresses).
    expect(log, log.join('\n')).toHaveLength(2);
    const handed = Math.max(...log.map((l) => l.split('; handed ')[1]?.split(' ').length ?? 0));
    expect(handed).toBeGreaterThanOrEqual(2);
    expect(handed).toBeLessThanOrEqual(3);
    for (const attempt of run.result.attempts) {
      const output = attempt.commands[0]?.output ?? '';
      expectIsolated(output, `attempt ${attempt.index}:\n${output}\n${log.join('\n')}`);
      // A name the resolver maps to the other sandbox: the address guard refuses it.
      for (const name of ['connect-name-8080', 'connect-name-443', 'get-name'])
        expect(probeResult(output, `proxy ${name}`), output).toMatch(
          /^HTTP\/1\.[01] 403 \| .*resolves to \d+\.\d+\.\d+\.\d+, a refused private /,
        );
    }
    expect(seen.size).toBeGreaterThanOrEqual(2);
    expect(canary.hits).toEqual([]);
  }, 120_000);

  it('with an operator allowance covering the sandbox networks, the proxy dials the other sandbox and the firewall lets no answer back', async () => {
    // Docker's address pools (the sandbox networks are made from them). Only the peer names
    // resolve, to addresses on this host's bridges; IP literals stay refused. Same environment:
    // both attempts start from the cache entry the first test made (when run alone, one builds it).
    const { run, log } = await runPair('eg-attacks-sandboxes', 'sleep 4', [
      '172.16.0.0/12',
      '192.168.0.0/16',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(log, log.join('\n')).toHaveLength(2);
    for (const attempt of run.result.attempts) {
      const output = attempt.commands[0]?.output ?? '';
      expectIsolated(output, `attempt ${attempt.index}:\n${output}\n${log.join('\n')}`);
      // The guard lets the name through (no 403): the proxy dials the other sandbox from the
      // other network's gateway, and the firewall drops the answer coming in on that bridge, so
      // no connection is made (the listener above recorded nothing).
      expect(probeResult(output, 'proxy get-name'), output).toMatch(
        /^(closed|HTTP\/1\.[01] 50\d )/,
      );
    }
    expect(canary.hits).toEqual([]);
  }, 120_000);
});
