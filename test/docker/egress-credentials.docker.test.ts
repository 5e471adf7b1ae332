import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import { cleanUpInstance, loopbackEgress } from './egress-world.js';
import { lifecycleTestImage, makeSampleRepository, runJson } from './lifecycle-support.js';

/**
 * Issue 19 item 1 through the real lifecycle (`berth run` → lockdown → agent command, real
 * Docker and firewall): a credential set by the proxy reaches the upstream, and a search from
 * inside the sandbox finds no part of its value. The value is sha256(seed): the sandbox's search
 * is given the seed and computes the parts inside its own process, which it leaves out of the
 * memory it searches (every other process it may read, every file, the environment, every
 * /proc/PID/environ). The setup script does not get the secret.
 */

const instance = `egcred-${process.pid}`;
const seed = randomBytes(16).toString('hex');
const value = createHash('sha256').update(seed).digest('hex');
const parts = [0, 1, 2, 3].map((i) => value.slice(i * 16, i * 16 + 16));
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;
let server: https.Server;
let port = 0;
let worldCa: CertificateAuthority;
const seen: Array<string | undefined> = [];

beforeAll(async () => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-egress-credentials-'));
  worldCa = await CertificateAuthority.create({ commonName: 'egress credentials test world' });
  const leaf = await worldCa.leafFor('api.test');
  server = https.createServer(
    { cert: leaf.certificatePem, key: leaf.privateKeyPem },
    (req, res) => {
      seen.push(req.headers.authorization);
      res.statusCode = 404;
      res.end('no repository here\n');
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(() => {
  server?.close();
  cleanUpInstance(instance, work, repo.dir);
});

/** Perl (in the minimal image): the value's parts from the seed, then the search. */
const SEARCH = String.raw`
use Digest::SHA qw(sha256_hex); use File::Find;
my $v = sha256_hex($ARGV[0]); my @parts = map { substr($v, $_ * 16, 16) } 0 .. 3;
my %hits; my %count = (files => 0, environs => 0, memories => 0, regions => 0);
sub scan { my ($what, $data) = @_; for my $p (@parts) { $hits{$what}++ if index($data, $p) >= 0 } }
scan('env', join("\n", map { "$_=$ENV{$_}" } keys %ENV));
find({ no_chdir => 1, wanted => sub {
  if ($File::Find::name =~ m{^/(proc|sys|dev)(/|$)}) { $File::Find::prune = 1; return }
  return if -l $_ || !-f _;
  open(my $fh, '<:raw', $_) or return; $count{files}++;
  my $carry = '';
  while (sysread($fh, my $buf, 1 << 20)) { scan("file $_", $carry . $buf); $carry = substr($buf, -15) }
} }, '/');
for my $pid (grep { $_ != $$ } map { m{/proc/(\d+)$} ? $1 : () } glob('/proc/[0-9]*')) {
  if (open(my $e, '<:raw', "/proc/$pid/environ")) { local $/; my $t = <$e>; if (defined $t) { scan("environ $pid", $t); $count{environs}++ } }
  open(my $maps, '<', "/proc/$pid/maps") or next; open(my $mem, '<:raw', "/proc/$pid/mem") or next;
  my $read = 0;
  while (my $line = <$maps>) {
    my ($s, $e, $perm) = $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+)/ or next;
    next unless $perm =~ /^r/;
    no warnings; my ($a, $b) = (hex $s, hex $e); use warnings;
    next if $b - $a > (256 << 20);
    sysseek($mem, $a, 0) or next;
    my ($left, $carry) = ($b - $a, '');
    while ($left > 0) {
      my $n = sysread($mem, my $buf, $left > (1 << 20) ? (1 << 20) : $left);
      last unless $n; $left -= $n; $read = 1; $count{regions}++;
      scan("memory $pid", $carry . $buf); $carry = substr($buf, -15);
    }
  }
  $count{memories}++ if $read;
}
print "scanned: files=$count{files} environs=$count{environs} memories=$count{memories} regions=$count{regions}\n";
print 'hits: ', (join(', ', sort keys %hits) || 'none'), "\n";
`;

describe('credentials set by the egress proxy (docker)', () => {
  it('the upstream gets the stored value; no part of it is in the sandbox, the setup, the log or the result', async () => {
    const envFile = join(work, 'cred.yaml');
    writeFileSync(
      envFile,
      [
        'name: eg-credentials',
        `repository: ${repo.dir}`,
        'image: minimal',
        'secrets: [API_TOKEN]',
        `setup: 'echo "setup sees API_TOKEN: \${API_TOKEN:-unset}"'`,
        'internet:',
        '  access: allowlist',
        '  domains: [api.test]',
        '  credentials:',
        '    - { host: api.test, header: Authorization, secret: API_TOKEN, format: "Bearer {value}" }',
        '',
      ].join('\n'),
    );
    const run = await runJson({
      dataDir: join(work, 'data'),
      instance,
      envFile,
      resolveImage: () => image,
      lookupSecret: (name) => (name === 'API_TOKEN' ? value : undefined),
      egress: loopbackEgress(['api.test'], [port], [worldCa.certificatePem]),
      command: [
        `git -c http.extraHeader="Authorization: Bearer sandbox-made-up" ls-remote https://api.test:${port}/repo.git > /dev/null 2>&1; echo "git done"`,
        `perl -e ${shellQuote(SEARCH)} ${seed} 2>&1`,
      ].join('\n'),
    });
    expect(run.code, run.stderr).toBe(0);
    const output = run.result.attempts[0]?.commands[0]?.output ?? '';
    expect(output).toContain('git done');
    // The upstream saw the stored value, and never the sandbox's own.
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([`Bearer ${value}`]));
    // The search ran over files, environments and the memory of other processes, and found nothing.
    const scanned = /scanned: files=(\d+) environs=(\d+) memories=(\d+) regions=(\d+)/.exec(output);
    expect(scanned, output).not.toBeNull();
    expect(Number(scanned?.[1])).toBeGreaterThan(1000);
    expect(Number(scanned?.[2])).toBeGreaterThan(0);
    expect(Number(scanned?.[3])).toBeGreaterThan(0);
    expect(output).toContain('hits: none');
    // The setup script did not get it; the log and the result do not carry it.
    expect(run.stderr).toContain('setup sees API_TOKEN: unset');
    expect(run.stderr).toContain('credentials set by the proxy for api.test (Authorization)');
    for (const part of parts) {
      expect(run.stderr).not.toContain(part);
      expect(JSON.stringify(run.result)).not.toContain(part);
    }
  });
});

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
