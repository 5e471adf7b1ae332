import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { expect } from 'vitest';
import type { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import type { EgressEnforcerOptions } from '../../src/egress/egress-enforcer.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { runJson, type LocalRun } from './lifecycle-support.js';

/** Pieces shared by the lockdown tests: a TCP canary on every host address, and the clean-up check. */

export interface Canary {
  port: number;
  /** Remote addresses of every connection it accepted. */
  hits: string[];
  close(): void;
}

export async function startCanary(): Promise<Canary> {
  const hits: string[] = [];
  const server = net.createServer((socket) => {
    hits.push(String(socket.remoteAddress));
    socket.on('error', () => undefined);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  return { port: (server.address() as net.AddressInfo).port, hits, close: () => server.close() };
}

/**
 * Removes what a test's Berth instance left (containers, images) and returns what was left:
 * containers and networks must be none.
 */
export function removeInstanceLeftovers(instance: string): {
  containers: string;
  networks: string;
} {
  const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
  const containers = docker('ps', '-aq', '--filter', `label=berth.instance=${instance}`);
  const networks = docker('network', 'ls', '-q', '--filter', `label=berth.instance=${instance}`);
  if (containers !== '') docker('rm', '-f', ...containers.split('\n'));
  removeInstanceImages(instance);
  return { containers, networks };
}

/**
 * A test's clean-up: removes what its Berth instance left and the test's `folders`, then fails the
 * test if any container or network of the instance was left.
 */
export function cleanUpInstance(instance: string, ...folders: string[]): void {
  const { containers, networks } = removeInstanceLeftovers(instance);
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  expect(containers).toBe('');
  expect(networks).toBe('');
}

/**
 * Proxy settings for a test world on this host's loopback: each of `names` resolves to 127.0.0.1,
 * the loopback range is allowed, the world's `ports` may be tunnelled to, and its `upstreamCa` is
 * trusted for upstreams.
 */
export function loopbackEgress(
  names: readonly string[],
  ports: readonly number[],
  upstreamCa: readonly string[],
): EgressEnforcerOptions {
  return {
    hosts: Object.fromEntries(names.map((name) => [name, '127.0.0.1'])),
    allow: ['127.0.0.0/8'],
    extraPorts: ports,
    upstreamCa,
  };
}

/** The host's own IPv4 addresses a sandbox might aim at: Docker's default bridge and the outward interfaces. */
export function hostAddresses(): string[] {
  const docker0 = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(
    execFileSync('ip', ['-4', '-o', 'addr', 'show', 'docker0'], { encoding: 'utf8' }),
  )?.[1];
  // Bridges of sandbox networks (Berth's `bq…`, Docker's `br-…`) come and go with other tests;
  // the default bridge and the host's own interfaces are what stays.
  const outward = Object.entries(networkInterfaces())
    .filter(([name]) => !/^(bq|br-|veth|docker)/.test(name))
    .flatMap(([, infos]) => infos ?? [])
    .filter((i) => i.family === 'IPv4' && !i.internal)
    .map((i) => i.address);
  return [...new Set([docker0 ?? '', ...outward].filter((a) => a !== ''))];
}

/** TCP ports something listens on, on this host (`ss -ltnH`), whatever address they are bound to. */
export function hostListeningPorts(): number[] {
  const out = execFileSync('ss', ['-ltnH'], { encoding: 'utf8' });
  const ports = out
    .split('\n')
    .map((line) => /:(\d+)$/.exec(line.trim().split(/\s+/)[3] ?? '')?.[1])
    .filter((p): p is string => p !== undefined)
    .map(Number);
  return [...new Set(ports)].sort((a, b) => a - b);
}

export interface AddressCanary {
  /** `local address:port <- remote address` of every connection accepted. */
  hits: string[];
  close(): void;
}

/**
 * A canary listening on each of `addresses` at each of `ports` (the ports of the test world's
 * servers, so that a name that rebinds or resolves to one of these addresses lands here).
 * Addresses that cannot be bound (an interface gone) are skipped; a port taken is an error.
 */
export async function startCanaryAt(
  addresses: readonly string[],
  ports: readonly number[],
): Promise<AddressCanary> {
  const hits: string[] = [];
  const servers: net.Server[] = [];
  for (const address of addresses) {
    for (const port of ports) {
      const server = net.createServer((socket) => {
        hits.push(`${address}:${port} <- ${String(socket.remoteAddress)}`);
        socket.on('error', () => undefined);
        socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, address, () => resolve());
      });
      servers.push(server);
    }
  }
  return { hits, close: () => servers.forEach((s) => s.close()) };
}

/**
 * A raw HTTP client for the sandbox (perl, in the `minimal` image): sends one payload in one
 * write ("\r" and "\n" written as text), reads until the peer closes (at most 10 s) and prints
 * the status codes of every response (`200 403`), `closed` when none came, `no-connection`.
 */
export const RAW_HTTP_CLIENT = String.raw`
use IO::Socket::INET;
my ($host, $port, $payload) = @ARGV;
$payload =~ s/\\r/\r/g; $payload =~ s/\\n/\n/g;
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5) or do { print "no-connection\n"; exit 0 };
syswrite($s, $payload);
my $all = '';
eval { local $SIG{ALRM} = sub { die "timeout\n" }; alarm 10; while (sysread($s, my $buf, 65536)) { $all .= $buf } alarm 0; };
my @codes = $all =~ m{^HTTP/1\.[01] (\d{3})}mg;
print @codes ? join(' ', @codes) : 'closed', "\n";
`;

/** Writes text with CR and LF as the two-character escapes `\r`, `\n`, single-quoted for bash. */
export function shellPayload(text: string): string {
  const escaped = text.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
  return `'${escaped.replace(/'/g, `'\\''`)}'`;
}

/** The value of the probe line `name: value` in a command's output, or `(missing)`. */
export function probeResult(output: string, name: string): string {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped}: (.*)$`, 'm').exec(output)?.[1]?.trim() ?? '(missing)';
}

export interface WorldServers {
  httpPort: number;
  httpsPort: number;
  /** `http|https METHOD host url` of every request that reached a server. */
  requests: string[];
  /** The SNI of every TLS connection the HTTPS server accepted. */
  tlsNames: string[];
  close(): void;
}

/**
 * The "outside world" of a lockdown test: an HTTP and an HTTPS server on one loopback address
 * (the proxy reaches them through the test resolver), answering for `names` with certificates of
 * `ca`. `/to/<host>/<rest>` redirects to `<same scheme>://<host>:<same port>/<rest>`; everything
 * else answers 200 `world <host> <url>`.
 */
export async function startWorldServers(
  address: string,
  names: readonly string[],
  ca: CertificateAuthority,
): Promise<WorldServers> {
  const requests: string[] = [];
  const tlsNames: string[] = [];
  const ports = { http: 0, https: 0 };
  const handler =
    (scheme: 'http' | 'https') => (req: http.IncomingMessage, res: http.ServerResponse) => {
      req.resume();
      req.on('end', () => {
        requests.push(`${scheme} ${req.method} ${req.headers.host} ${req.url}`);
        const moved = /^\/to\/([^/]+)\/(.*)$/.exec(req.url ?? '');
        if (moved !== null) {
          res.writeHead(302, {
            location: `${scheme}://${moved[1]}:${ports[scheme]}/${moved[2]}`,
            'content-length': 0,
          });
          res.end();
          return;
        }
        res.end(`world ${req.headers.host} ${req.url}\n`);
      });
    };
  const contexts = new Map<string, tls.SecureContext>();
  for (const name of names) {
    const leaf = await ca.leafFor(name);
    contexts.set(
      name,
      tls.createSecureContext({ key: leaf.privateKeyPem, cert: leaf.certificatePem }),
    );
  }
  const plain = http.createServer(handler('http'));
  const secure = https.createServer(
    {
      SNICallback: (servername, callback) => {
        const context = contexts.get(servername);
        if (context === undefined) callback(new Error(`no certificate for ${servername}`));
        else callback(null, context);
      },
    },
    handler('https'),
  );
  secure.on('secureConnection', (socket: tls.TLSSocket) =>
    tlsNames.push(String((socket as tls.TLSSocket & { servername?: string }).servername)),
  );
  const listen = (server: net.Server) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, address, () => resolve((server.address() as net.AddressInfo).port));
    });
  ports.http = await listen(plain);
  ports.https = await listen(secure);
  return {
    httpPort: ports.http,
    httpsPort: ports.https,
    requests,
    tlsNames,
    close: () => {
      plain.closeAllConnections();
      plain.close();
      secure.closeAllConnections();
      secure.close();
    },
  };
}

/**
 * Runs `command` with `berth run --json` in a sandbox of the environment `envFile` on `image`
 * (data under `work`/data) behind the proxy settings `egress`: the run and its command's output.
 */
export async function runBehindProxy(options: {
  work: string;
  instance: string;
  envFile: string;
  command: string;
  image: string;
  egress: EgressEnforcerOptions;
}): Promise<LocalRun & { output: string }> {
  const run = await runJson({
    dataDir: join(options.work, 'data'),
    instance: options.instance,
    envFile: options.envFile,
    command: options.command,
    resolveImage: () => options.image,
    egress: options.egress,
  });
  return { ...run, output: run.result.attempts[0]?.commands[0]?.output ?? '' };
}
