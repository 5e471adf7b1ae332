import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import {
  hostAddresses,
  probeResult,
  RAW_HTTP_CLIENT,
  cleanUpInstance,
  shellPayload,
  startCanaryAt,
  startWorldServers,
  type AddressCanary,
  type WorldServers,
} from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';

/**
 * Request-level attacks on the egress proxy from inside a real sandbox, through the real
 * lifecycle (`berth run` → lockdown → agent command), policy `allowlist` with method limits
 * (GET, HEAD), so HTTPS is intercepted. One attempt runs every probe and prints one line each;
 * the test asserts per line, then that the world's servers saw exactly the allowed requests and
 * the canaries nothing.
 *
 * The world: HTTP and HTTPS servers on 127.0.0.2 (the only address the guard is told to allow
 * besides the host's own, see below), reached by test names through a test resolver that never
 * asks real DNS. Canaries listen on the same two ports on 127.0.0.9, Docker's bridge address and
 * the host's outward addresses: a name that resolves or rebinds there and got dialled would land
 * in a canary. Tools in the `minimal` image only: perl (raw HTTP), openssl s_client (TLS with a
 * chosen SNI through the proxy), git (a client that follows redirects). No packet leaves the
 * machine: every address a probe or the resolver names is on this host.
 */

const instance = `egattack-req-${process.pid}`;
const WORLD = '127.0.0.2';
const CANARY = '127.0.0.9';
/** Names the world's servers answer for (and hold certificates for). */
const WORLD_NAMES = [
  'allowed.test',
  'other-allowed.test',
  'denied.test',
  'rebind.test',
  'rebind-reverse.test',
];

let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let image: string;
let worldCa: CertificateAuthority;
let world: WorldServers;
let canary: AddressCanary;
let host: string[];
const lookups: string[] = [];

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-attacks-req-'));
  worldCa = await CertificateAuthority.create({ commonName: 'egress attacks test world' });
  world = await startWorldServers(WORLD, WORLD_NAMES, worldCa);
  host = hostAddresses();
  canary = await startCanaryAt([CANARY, ...host], [world.httpPort, world.httpsPort]);
});

afterAll(() => {
  world?.close();
  canary?.close();
  cleanUpInstance(instance, work, repo.dir);
});

/** The test resolver: fixed answers, two names that change their answer on every lookup. */
function testResolver(): (name: string) => Promise<string[]> {
  let rebind = 0;
  let reverse = 0;
  const [bridge, outward] = [host[0] ?? CANARY, host[1] ?? host[0] ?? CANARY];
  const answers: Record<string, () => string[]> = {
    // Checked with a vetted answer first, then a loopback one: a proxy that looked up again to
    // dial would land in the canary.
    'rebind.test': () => [rebind++ % 2 === 0 ? WORLD : CANARY],
    'rebind-reverse.test': () => [reverse++ % 2 === 0 ? CANARY : WORLD],
    'internal-loopback.test': () => [CANARY],
    'internal-mapped.test': () => [`::ffff:${CANARY}`],
    'internal-bridge.test': () => [bridge],
    'internal-host.test': () => [outward],
    'internal-private.test': () => ['172.17.0.99'],
  };
  return (name) => {
    lookups.push(name);
    const answer = answers[name];
    if (answer !== undefined) return Promise.resolve(answer());
    if (WORLD_NAMES.includes(name)) return Promise.resolve([WORLD]);
    return Promise.reject(Object.assign(new Error(`${name}: not found`), { code: 'ENOTFOUND' }));
  };
}

interface Probe {
  name: string;
  /** A shell line printing `name: result`. */
  line: string;
  /** The expected result (a regular expression over the whole result). */
  expected: RegExp;
  /** Requests this probe should bring to the world's servers (`http GET host url`). */
  reaches?: string[];
}

describe('request-level attacks on the proxy from inside a sandbox (docker)', () => {
  it('refuses pipelined, smuggled, redirected, rebound, mis-addressed and method-limited requests; the servers see only what was allowed', async () => {
    const P = world.httpPort;
    const T = world.httpsPort;
    const probes: Probe[] = [];
    const refused = /^(4\d\d|closed)$/;
    /** Plain HTTP through the proxy, one write. */
    const raw = (name: string, payload: string, expected: RegExp, reaches: string[] = []) =>
      probes.push({
        name,
        line: `echo "${name}: $(perl /tmp/raw.pl "$gw" "$port" ${shellPayload(payload)})"`,
        expected,
        reaches,
      });
    /**
     * HTTPS through the proxy with openssl s_client (CONNECT `target`, the given SNI flags,
     * verifying against the bundle Berth installed), one write inside the tunnel; prints the
     * status codes of the responses, `closed` when the tunnel ended without one.
     */
    const tls = (
      name: string,
      target: string,
      sni: string,
      payload: string,
      expected: RegExp,
      reaches: string[] = [],
    ) =>
      probes.push({
        name,
        line:
          `out=$(printf '%b' ${shellPayload(payload)} | timeout 20 openssl s_client -quiet -proxy "$gw:$port" ` +
          `-connect ${target} ${sni} -CAfile "$SSL_CERT_FILE" -verify_return_error 2>>/tmp/s_client.err ` +
          `| tr -d '\\r' | grep -oE '^HTTP/1\\.[01] [0-9]{3}' | cut -d' ' -f2 | tr '\\n' ' '); ` +
          `echo "${name}: \${out:-closed}"`,
        expected,
        reaches,
      });
    const get = (url: string, hostHeader: string, extra = 'Connection: close\r\n') =>
      `GET ${url} HTTP/1.1\r\nHost: ${hostHeader}\r\n${extra}\r\n`;
    const a = `allowed.test:${P}`;
    const at = `allowed.test:${T}`;

    // Positive controls: the same tools get through when the request is allowed.
    raw('http-baseline', get(`http://${a}/baseline`, a), /^200$/, [`http GET ${a} /baseline`]);
    tls('https-baseline', at, '-servername allowed.test', get('/tls-baseline', at), /^200$/, [
      `https GET ${at} /tls-baseline`,
    ]);

    // 1. A GET then a POST pipelined in one write: the GET passes, the POST never reaches the server.
    raw(
      'http-pipelined-get-post',
      get(`http://${a}/pipe-get`, a, '') +
        `POST http://${a}/pipe-post HTTP/1.1\r\nHost: ${a}\r\nContent-Length: 5\r\n\r\nhello`,
      /^200 403$/,
      [`http GET ${a} /pipe-get`],
    );
    raw(
      'http-pipelined-get-denied-host',
      get(`http://${a}/pipe2-get`, a, '') +
        get(`http://denied.test:${P}/pipe2-denied`, `denied.test:${P}`),
      /^200 403$/,
      [`http GET ${a} /pipe2-get`],
    );
    tls(
      'https-pipelined-get-post',
      at,
      '-servername allowed.test',
      get('/tls-pipe-get', at, '') +
        `POST /tls-pipe-post HTTP/1.1\r\nHost: ${at}\r\nContent-Length: 5\r\n\r\nhello`,
      /^200 403$/,
      [`https GET ${at} /tls-pipe-get`],
    );

    // 2. Host or SNI inside the tunnel differing from the CONNECT target.
    for (const [name, hostHeader] of [
      ['https-host-other-allowed', `other-allowed.test:${T}`],
      ['https-host-denied', `denied.test:${T}`],
      ['https-host-other-port', 'allowed.test'],
    ] as const)
      tls(name, at, '-servername allowed.test', get(`/${name}`, hostHeader), /^403$/);
    tls(
      'https-absolute-url',
      at,
      '-servername allowed.test',
      get(`https://denied.test:${T}/abs`, at),
      /^403$/,
    );
    tls(
      'https-nested-connect',
      at,
      '-servername allowed.test',
      `CONNECT denied.test:${T} HTTP/1.1\r\nHost: denied.test:${T}\r\n\r\n`,
      /^403$/,
    );
    tls(
      'https-sni-other-allowed',
      at,
      '-servername other-allowed.test',
      get('/sni1', at),
      /^closed$/,
    );
    tls('https-sni-denied', at, '-servername denied.test', get('/sni2', at), /^closed$/);
    tls('https-sni-none', at, '-noservername', get('/sni3', at), /^closed$/);

    // 3. DNS rebinding between check and dial. rebind.test answers 127.0.0.2 (vetted), then the
    // canary's 127.0.0.9, alternately; rebind-reverse.test the other way round.
    const rb = `rebind.test:${P}`;
    raw('rebind-http-1', get(`http://${rb}/rebind-1`, rb), /^200$/, [`http GET ${rb} /rebind-1`]);
    raw('rebind-http-2', get(`http://${rb}/rebind-2`, rb), /^403$/);
    raw('rebind-http-3', get(`http://${rb}/rebind-3`, rb), /^200$/, [`http GET ${rb} /rebind-3`]);
    raw('rebind-http-4', get(`http://${rb}/rebind-4`, rb), /^403$/);
    // One lookup per tunnel: both requests inside it go to the vetted address.
    const rbt = `rebind.test:${T}`;
    tls(
      'rebind-https-tunnel',
      rbt,
      '-servername rebind.test',
      get('/tls-rebind-1', rbt, '') + get('/tls-rebind-2', rbt),
      /^200 200$/,
      [`https GET ${rbt} /tls-rebind-1`, `https GET ${rbt} /tls-rebind-2`],
    );
    const rr = `rebind-reverse.test:${T}`;
    raw('rebind-reverse-connect-1', `CONNECT ${rr} HTTP/1.1\r\nHost: ${rr}\r\n\r\n`, /^403$/);
    tls(
      'rebind-reverse-https-2',
      rr,
      '-servername rebind-reverse.test',
      get('/tls-rr', rr),
      /^200$/,
      [`https GET ${rr} /tls-rr`],
    );

    // 4. Allowed names that resolve to this host or a private address.
    for (const name of ['loopback', 'mapped', 'bridge', 'host', 'private']) {
      const n = `internal-${name}.test`;
      raw(`internal-${name}-http`, get(`http://${n}:${P}/internal`, `${n}:${P}`), /^403$/);
      raw(
        `internal-${name}-connect`,
        `CONNECT ${n}:${T} HTTP/1.1\r\nHost: ${n}:${T}\r\n\r\n`,
        /^403$/,
      );
    }

    // 5. A redirect from an allowed host to a refused one, followed by real clients.
    probes.push({
      name: 'redirect-http',
      line: `echo "redirect-http: $(perl -MHTTP::Tiny -e '$r = HTTP::Tiny->new(timeout => 10)->get($ARGV[0]); print "$r->{status} $r->{content}"' http://${a}/to/denied.test/stolen)"`,
      expected: new RegExp(`^403 berth egress: GET denied\\.test:${P} denied: `),
      reaches: [`http GET ${a} /to/denied.test/stolen`],
    });
    probes.push({
      name: 'redirect-https',
      line: `echo "redirect-https: $(timeout 30 git ls-remote https://${at}/to/denied.test/repo.git 2>&1 | tr '\\n' ' ')"`,
      expected: /CONNECT tunnel failed, response 403|403 from proxy after CONNECT/,
      reaches: [`https GET ${at} /to/denied.test/repo.git/info/refs?service=git-upload-pack`],
    });

    // 6. Smuggling, CRLF in the CONNECT target, case and trailing-dot variants.
    raw(
      'http-duplicate-content-length',
      `GET http://${a}/dup HTTP/1.1\r\nHost: ${a}\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello`,
      refused,
    );
    raw(
      'http-duplicate-content-length-same',
      `GET http://${a}/dup2 HTTP/1.1\r\nHost: ${a}\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n`,
      refused,
    );
    tls(
      'https-duplicate-content-length',
      at,
      '-servername allowed.test',
      `GET /tls-dup HTTP/1.1\r\nHost: ${at}\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello`,
      refused,
    );
    tls(
      'https-cl-te',
      at,
      '-servername allowed.test',
      `GET /tls-clte HTTP/1.1\r\nHost: ${at}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      refused,
    );
    raw(
      'connect-crlf-split',
      `CONNECT allowed.test:${T}\r\nHost: denied.test:${T} HTTP/1.1\r\n\r\n`,
      refused,
    );
    raw(
      'connect-crlf-encoded',
      `CONNECT allowed.test%0d%0a:${T} HTTP/1.1\r\nHost: ${at}\r\n\r\n`,
      refused,
    );
    raw(
      'connect-crlf-header',
      `CONNECT allowed.test:${T}%0d%0aX-Injected:%20denied.test HTTP/1.1\r\nHost: ${at}\r\n\r\n`,
      refused,
    );
    raw('connect-bare-cr', `CONNECT allowed.test\r:${T} HTTP/1.1\r\nHost: ${at}\r\n\r\n`, refused);
    raw('connect-bare-lf', `CONNECT allowed.test:${T}\nX: y HTTP/1.1\r\n\r\n`, refused);
    raw('case-allowed-http', get(`http://ALLOWED.TEST.:${P}/case`, `ALLOWED.TEST.:${P}`), /^200$/, [
      `http GET ${a} /case`,
    ]);
    raw('case-mixed-host-header', get(`http://${a}/case2`, `Allowed.Test.:${P}`), /^200$/, [
      `http GET ${a} /case2`,
    ]);
    tls(
      'case-allowed-connect',
      `AlLoWeD.TeSt.:${T}`,
      '-servername allowed.test',
      get('/tls-case', at),
      /^200$/,
      [`https GET ${at} /tls-case`],
    );
    tls(
      'case-host-in-tunnel',
      at,
      '-servername allowed.test',
      get('/tls-case2', `ALLOWED.TEST.:${T}`),
      /^200$/,
      [`https GET ${at} /tls-case2`],
    );
    raw('case-denied-http', get(`http://DENIED.TEST.:${P}/case`, `DENIED.TEST.:${P}`), /^403$/);
    raw(
      'case-denied-connect',
      `CONNECT Denied.Test.:${T} HTTP/1.1\r\nHost: Denied.Test.:${T}\r\n\r\n`,
      /^403$/,
    );
    raw(
      'two-trailing-dots',
      get(`http://allowed.test..:${P}/dots`, `allowed.test..:${P}`),
      refused,
    );
    raw(
      'two-trailing-dots-connect',
      `CONNECT allowed.test..:${T} HTTP/1.1\r\nHost: allowed.test..:${T}\r\n\r\n`,
      refused,
    );

    // The other request checks, inside the intercepted tunnel (the plain HTTP forms are in
    // egress-attacks.docker.test.ts).
    tls(
      'https-get-with-body',
      at,
      '-servername allowed.test',
      `GET /tls-body HTTP/1.1\r\nHost: ${at}\r\nContent-Length: 4\r\n\r\nbody`,
      /^403$/,
    );
    tls(
      'https-method-override',
      at,
      '-servername allowed.test',
      get('/tls-override', at, 'X-HTTP-Method-Override: DELETE\r\n'),
      /^403$/,
    );
    tls(
      'https-websocket',
      at,
      '-servername allowed.test',
      get(
        '/tls-ws',
        at,
        'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
      ),
      /^403$/,
    );
    tls(
      'https-h2c',
      at,
      '-servername allowed.test',
      get(
        '/tls-h2c',
        at,
        'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n',
      ),
      /^403$/,
    );
    tls(
      'https-alpn-h2-only',
      at,
      '-servername allowed.test -alpn h2',
      get('/tls-h2', at),
      /^closed$/,
    );

    // 7. Methods other than GET/HEAD, over plain HTTP and inside the intercepted tunnel. PURGE is
    // a method Node's parser knows (the policy refuses it: 403); BREW one it does not (400).
    const methodRefusal = (method: string) => (method === 'BREW' ? /^400$/ : /^403$/);
    for (const method of ['PUT', 'PATCH', 'DELETE', 'PURGE', 'BREW']) {
      const body = ['DELETE', 'PURGE', 'BREW'].includes(method) ? '' : 'Content-Length: 5\r\n';
      const tail = body === '' ? '' : 'hello';
      raw(
        `http-${method}`,
        `${method} http://${a}/m HTTP/1.1\r\nHost: ${a}\r\n${body}\r\n${tail}`,
        methodRefusal(method),
      );
    }
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'PURGE', 'BREW']) {
      const body = ['DELETE', 'PURGE', 'BREW'].includes(method) ? '' : 'Content-Length: 5\r\n';
      const tail = body === '' ? '' : 'hello';
      tls(
        `https-${method}`,
        at,
        '-servername allowed.test',
        `${method} /m HTTP/1.1\r\nHost: ${at}\r\n${body}\r\n${tail}`,
        methodRefusal(method),
      );
    }

    const command = [
      `cat > /tmp/raw.pl <<'PERL'${RAW_HTTP_CLIENT}PERL`,
      'proxy=${HTTP_PROXY#http://}; gw=${proxy%:*}; port=${proxy##*:}; echo "proxy=$gw:$port"',
      ...probes.map((p) => p.line),
    ].join('\n');

    const run = await runJson({
      dataDir: join(work, 'data'),
      instance,
      envFile: envFile(),
      command,
      resolveImage: () => image,
      egress: {
        resolver: testResolver(),
        // The world's address, and the host's own addresses: an operator allowance that covers
        // them must not open the host itself (the proxy's own addresses are refused regardless).
        allow: [`${WORLD}/32`, ...host.map((h) => `${h}/32`)],
        extraPorts: [P, T],
        upstreamCa: [worldCa.certificatePem],
      },
    });
    expect(run.code, run.stderr).toBe(0);
    const output = run.result.attempts[0]?.commands[0]?.output ?? '';
    expect(output).toMatch(/proxy=\d+\.\d+\.\d+\.\d+:\d+/);
    const results = probes.map((p) => `${p.name}: ${probeResult(output, p.name)}`);
    expect(results).toEqual(
      probes.map((p) =>
        p.expected.test(probeResult(output, p.name))
          ? `${p.name}: ${probeResult(output, p.name)}`
          : `${p.name}: expected ${String(p.expected)}`,
      ),
    );

    // The servers saw exactly the allowed requests; the canaries nothing at all.
    expect([...world.requests].sort()).toEqual(probes.flatMap((p) => p.reaches ?? []).sort());
    expect(world.tlsNames.filter((n) => n !== 'allowed.test' && !n.startsWith('rebind'))).toEqual(
      [],
    );
    expect(canary.hits).toEqual([]);
    // Rebinding: one lookup per plain request and per tunnel, never one per dial.
    expect(lookups.filter((n) => n === 'rebind.test')).toHaveLength(5);
    expect(lookups.filter((n) => n === 'rebind-reverse.test')).toHaveLength(2);

    // Decisions are logged under the normalised name, with the rule that made them.
    const log = run.stderr;
    expect(log).toContain(`egress allowed GET allowed.test:${P} (domain:allowed.test)`);
    expect(log).toContain(`egress allowed CONNECT allowed.test:${T} (domain:allowed.test)`);
    expect(log).not.toMatch(/egress allowed \S+ (ALLOWED|AlLoWeD)/);
    expect(log).toContain(`egress denied GET denied.test:${P} (no-match)`);
    expect(log).toContain(`egress denied CONNECT denied.test:${T} (no-match)`);
    expect(log).toContain(`egress denied POST allowed.test:${P} (method)`);
    expect(log).toContain(`egress denied POST allowed.test:${T} (method)`);
    expect(log).toContain(`egress denied GET rebind.test:${P} (address:`);
    // The tunnels closed after their 200 were closed for the reason the probe aimed at.
    for (const reason of [
      'TLS SNI "other-allowed.test" differs from the CONNECT host',
      'TLS SNI "denied.test" differs from the CONNECT host',
      'TLS ClientHello without SNI',
      'the client does not offer ALPN http/1.1',
    ])
      expect(log).toContain(`egress denied CONNECT allowed.test:${T} (tunnel): ${reason}`);
    expect(log).toContain('only HTTP/1.0 and HTTP/1.1 requests are accepted');
    for (const name of ['loopback', 'mapped', 'bridge', 'host', 'private']) {
      expect(log).toContain(`egress denied GET internal-${name}.test:${P} (address:`);
      expect(log).toContain(`egress denied CONNECT internal-${name}.test:${T} (address:`);
    }
  }, 240_000);
});

function envFile(): string {
  const file = join(work, 'env.yaml');
  const domains = [
    'allowed.test',
    'other-allowed.test',
    'rebind.test',
    'rebind-reverse.test',
    ...['loopback', 'mapped', 'bridge', 'host', 'private'].map((n) => `internal-${n}.test`),
  ];
  writeFileSync(
    file,
    `name: eg-attacks-requests\nrepository: ${repo.dir}\nimage: minimal\n` +
      `internet: { access: allowlist, domains: [${domains.join(', ')}], methods: [GET, HEAD] }\n`,
  );
  return file;
}
