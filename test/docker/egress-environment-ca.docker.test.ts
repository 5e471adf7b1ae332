import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import { EnvironmentCertificateAuthorities } from '../../src/egress/environment-certificate-authorities.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { cleanUpInstance, loopbackEgress } from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';

/**
 * One egress CA per environment through the real lifecycle (`berth run` → runLocal →
 * EgressEnforcer, needs root for the firewall): the attempts of one environment, and a later run
 * (a new orchestrator on the same data directory: a restart), see the same CA; another
 * environment sees another; the sandbox trusts it through the system store as well as the
 * variables; its key is neither in the sandbox nor in clear in the database file. The "outside
 * world" is an HTTPS server on the host's loopback under the test name `allowed.test`.
 */

const instance = `egca-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let tlsServer: https.Server;
let tlsPort = 0;
let worldCa: CertificateAuthority;
const requests: string[] = [];

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-ca-'));
  worldCa = await CertificateAuthority.create({ commonName: 'egress CA test world' });
  const leaf = await worldCa.leafFor('allowed.test');
  tlsServer = https.createServer(
    { cert: leaf.certificatePem, key: leaf.privateKeyPem },
    (req, res) => {
      requests.push(`${req.method} ${req.headers.host} ${req.url}`);
      res.statusCode = 404;
      res.end('no repository here\n');
    },
  );
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  tlsPort = (tlsServer.address() as net.AddressInfo).port;
});

afterAll(() => {
  tlsServer?.close();
  cleanUpInstance(instance, work, repo.dir);
});

const dataDir = () => join(work, 'data');
const secretKeyFile = () => join(work, 'secret.key');

function envFile(name: string): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nrepository: ${repo.dir}\nimage: minimal\n` +
      `internet: { access: allowlist, domains: [allowed.test], methods: [GET, HEAD] }\n`,
  );
  return file;
}

/** Prints the CA the sandbox got, and uses it: through the variables and through the system store alone. */
const probe = () =>
  [
    'echo "ca=$(sha256sum < /usr/local/share/ca-certificates/berth-egress-ca.crt | cut -c1-64)"',
    `echo "vars: $(timeout 30 git ls-remote https://allowed.test:${tlsPort}/vars.git 2>&1 | head -3)"`,
    `echo "system: $(env -u GIT_SSL_CAINFO -u SSL_CERT_FILE -u CURL_CA_BUNDLE timeout 30 git ls-remote https://allowed.test:${tlsPort}/system.git 2>&1 | head -3)"`,
    `echo "keys=$(grep -rls 'PRIVATE KEY' /etc /usr/local /root /tmp /workspace 2>/dev/null | wc -l)"`,
  ].join('\n');

async function run(name: string, attempts: number) {
  const result = await runJson({
    dataDir: dataDir(),
    instance,
    resolveImage: () => image,
    envFile: envFile(name),
    command: probe(),
    attempts,
    secretKey: { secretKeyFile: secretKeyFile() },
    egress: loopbackEgress(['allowed.test'], [tlsPort], [worldCa.certificatePem]),
  });
  expect(result.code, result.stderr).toBe(0);
  // The CA went into the cache image when it was built: every lockdown finds it there.
  expect(result.stderr.split('CA already in the image').length - 1).toBe(attempts);
  return result.result.attempts.map((a) => {
    const output = a.commands[0]?.output ?? '';
    // Intercepted (the proxy's leaf, signed by the environment's CA) and trusted both ways.
    expect(output).toMatch(/vars: .*not found/);
    expect(output).toMatch(/system: .*not found/);
    expect(output).not.toMatch(/SSL certificate problem|server certificate verification failed/);
    expect(output).toContain('keys=0');
    return /ca=([0-9a-f]{64})/.exec(output)?.[1];
  });
}

describe('one egress CA per environment (docker)', () => {
  it('is shared by the attempts of an environment and kept across restarts; another environment has its own; the key is sealed at rest', async () => {
    const [first, second] = await run('ca-one', 2);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(second).toBe(first);
    expect(requests.filter((r) => r.startsWith('GET allowed.test'))).toHaveLength(4);

    // A new orchestrator on the same data directory (a restart) loads the stored CA.
    const [afterRestart] = await run('ca-one', 1);
    expect(afterRestart).toBe(first);

    const [other] = await run('ca-two', 1);
    expect(other).toMatch(/^[0-9a-f]{64}$/);
    expect(other).not.toBe(first);

    // What the sandbox got is the stored certificate; the stored key opens only with the secret key.
    const store = SqliteStore.open(dataDir());
    try {
      const environmentId = (await store.getEnvironmentByName('ca-one'))?.id ?? '';
      const stored = await store.getEgressCa(environmentId);
      const certificate = stored?.certificatePem ?? '';
      const pem = certificate.endsWith('\n') ? certificate : `${certificate}\n`;
      expect(createHash('sha256').update(pem).digest('hex')).toBe(first);
      const box = SecretBox.load({ secretKeyFile: secretKeyFile() }).box;
      const ca = await new EnvironmentCertificateAuthorities({ store, box }).forEnvironment(
        environmentId,
      );
      const privateKeyPem = ca.toPem().privateKeyPem;
      await store.close();
      const bytes = Buffer.concat(
        readdirSync(dataDir())
          .filter((f) => f.startsWith('berth'))
          .map((f) => readFileSync(join(dataDir(), f))),
      ).toString('latin1');
      // (The attempts' logs hold the probe's own text, so the key's body is what is looked for.)
      expect(bytes.includes(certificate.split('\n')[1] ?? '-')).toBe(true);
      const keyLines = privateKeyPem.split('\n').filter((l) => l !== '' && !l.startsWith('-'));
      expect(keyLines.length).toBeGreaterThan(0);
      expect(keyLines.filter((line) => bytes.includes(line))).toEqual([]);
    } finally {
      await store.close().catch(() => undefined);
    }
  });
});
