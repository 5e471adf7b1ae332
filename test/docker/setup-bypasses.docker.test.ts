import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import {
  lifecycleRunOptions,
  lifecycleTestImage,
  makeSampleRepository,
  runJson,
  writeLifecycleEnvFile,
} from './lifecycle-support.js';

/**
 * A hostile setup script against the leftover stop and the secret scan (issue 21 item 8; the
 * bypasses an adversarial review ran), through `berth run --json` on a real engine: a cache miss
 * (the agent runs in the setup's own container) and a cache hit (from the committed image). One
 * setup script tries every trick at once, each found by its own line of the agent's search:
 * - the scan turned off: `rm -f /dev/fd` (the old scan fed grep through process substitution),
 *   `/tmp` made a link into a full `/dev/shm` (the old scan's file list was a temporary file);
 * - processes that survive a stop: a thread group whose leader exited (its pid shows state Z)
 *   and a process named `a) Z\n` (a fake zombie to a parser of the first line of `stat`);
 * - places the old scan did not look: a `.git/objects` directory outside the workspace, a
 *   symbolic link's target, a file name, an extended attribute, a POSIX message queue named
 *   with a dot.
 */

const SECRET = 'bypass-s3cret-91fe-value';
const FRAGMENT = 's3cret-91fe';
const instance = `bypass-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;

/** Helpers committed into the repository (the setup script runs them from /workspace). */
const HELPERS: Record<string, string> = {
  // The thread-group leader exits (SYS_exit, not exit_group); another thread rewrites a file.
  'zombie-leader.pl': `use threads;
my $secret = $ENV{TOK}; $0 = "zl";
threads->create(sub { for (1..60000) { unless (-e "/root/late.txt") { open my $h, ">", "/root/late.txt"; print $h "late=$secret\\n"; close $h } select(undef, undef, undef, 0.01) } })->detach;
select(undef, undef, undef, 0.2); syscall(60, 0);
`,
  // prctl(PR_SET_NAME, "a) Z\\n"): the first line of /proc/<pid>/stat reads as state Z.
  'fake-zombie.pl': `my $n = "a) Z\\n"; syscall(157, 15, $n, 0, 0, 0); sleep 600;
`,
  // A POSIX message queue "/.tok" and an extended attribute, both holding the value.
  'mq-xattr.pl': `my $name = ".tok"; my $fd = syscall(240, $name, 0102, 0600, 0); die "mq_open $!" if $fd < 0;
my $m = "mq=$ENV{TOK}"; syscall(242, $fd, $m, length($m), 0, 0) == 0 or die "mq_send $!";
open my $h, ">", "/root/xattr-file"; print $h "harmless\\n"; close $h;
my ($p, $k, $v) = ("/root/xattr-file", "user.tok", "xa=$ENV{TOK}"); syscall(188, $p, $k, $v, length($v), 0) == 0 or die "setxattr $!";
`,
  'read-mq-xattr.pl': `my $name = ".tok"; my $fd = syscall(240, $name, 04000, 0, 0);
if ($fd >= 0) { my $b = "\\0" x 8192; my $n = syscall(243, $fd, $b, 8192, 0, 0); print "mq: ", substr($b, 0, $n), "\\n" } else { print "mq: none\\n" }
my ($p, $k) = ("/root/xattr-file", "user.tok"); my $b = "\\0" x 256; my $n = syscall(191, $p, $k, $b, 256); print "xattr: ", ($n > 0 ? substr($b, 0, $n) : "none"), "\\n";
`,
};

const SETUP = [
  'echo "//registry.example/:_authToken=$API_TOKEN" > /root/.npmrc',
  'TOK="$API_TOKEN" setsid perl zombie-leader.pl </dev/null >/dev/null 2>&1 &',
  'TOK="$API_TOKEN" setsid perl fake-zombie.pl </dev/null >/dev/null 2>&1 &',
  'mkdir -p /root/.cache/tool/.git/objects && echo "token=$API_TOKEN" > /root/.cache/tool/.git/objects/creds',
  'ln -s "token=$API_TOKEN" /root/.tok-link',
  'mkdir -p /root/names && touch "/root/names/$API_TOKEN"',
  'TOK="$API_TOKEN" perl mq-xattr.pl',
  'sleep 1',
  'rm -f /dev/fd',
  'rm -rf /tmp && ln -s /dev/shm /tmp',
  'dd if=/dev/zero of=/dev/shm/fill bs=1M 2>/dev/null || true',
];

const PLACES = [
  'npmrc',
  'late-file-written-after-scan',
  'file-under-.git/objects',
  'symlink-target',
  'file-name',
  'posix-mqueue',
  'xattr',
  'process-environ',
];

/** The agent phase: `HIT <place>` or `clean <place>` for each place. */
const SEARCH = String.raw`
hit() { if grep -qaF "${FRAGMENT}"; then echo "HIT $1"; else echo "clean $1"; fi; }
sleep 1
cat /root/.npmrc 2>/dev/null | hit npmrc
cat /root/late.txt 2>/dev/null | hit late-file-written-after-scan
cat /root/.cache/tool/.git/objects/creds 2>/dev/null | hit file-under-.git/objects
readlink /root/.tok-link 2>/dev/null | hit symlink-target
ls /root/names 2>/dev/null | hit file-name
perl /workspace/read-mq-xattr.pl > /root/mqx.txt 2>/dev/null
grep '^mq' /root/mqx.txt | hit posix-mqueue
grep '^xattr' /root/mqx.txt | hit xattr
for d in /proc/[0-9]*; do cat $d/environ 2>/dev/null; for t in $d/task/*; do cat $t/environ 2>/dev/null; done; done | hit process-environ
`;

beforeAll(() => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-bypass-'));
  for (const [name, text] of Object.entries(HELPERS)) writeFileSync(join(repo.dir, name), text);
  execFileSync('git', ['-C', repo.dir, 'add', '-A']);
  execFileSync('git', [
    '-C',
    repo.dir,
    '-c',
    'user.name=T',
    '-c',
    'user.email=t@e.example',
    'commit',
    '-qm',
    'helpers',
  ]);
});

afterAll(() => {
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

describe('a hostile setup script leaves no secret to the agent phase (docker)', () => {
  it('the scan cannot be turned off, no process survives, and names, link targets, xattrs, queues and .git/objects elsewhere are covered', async () => {
    const file = writeLifecycleEnvFile(
      work,
      'bypass',
      repo.dir,
      ['secrets: [API_TOKEN]', 'setup: |', ...SETUP.map((line) => `  ${line}`), ''].join('\n'),
    );
    const options = {
      ...lifecycleRunOptions({ work, instance, image, apiToken: SECRET }),
      envFile: file,
      command: SEARCH,
    };
    const miss = await runJson(options);
    expect(miss.code, miss.stderr).toBe(0);
    expect(miss.result.attempts[0]?.cacheHit).toBe(false);
    const hit = await runJson(options);
    expect(hit.code, hit.stderr).toBe(0);
    expect(hit.result.attempts[0]?.cacheHit).toBe(true);
    for (const [run, name] of [
      [miss, 'cache miss'],
      [hit, 'cache hit'],
    ] as const) {
      const output = run.result.attempts[0]?.commands[0]?.output ?? '';
      for (const place of PLACES) expect.soft(output, name).toContain(`clean ${place}`);
    }
    // The log is true: the leftovers named, the restart said, the scan's count given.
    expect(miss.stderr).toMatch(/stopped [1-9]\d* process\(es\) left running by the setup script/);
    expect(miss.stderr).toContain('the sandbox was restarted');
    expect(miss.stderr).toMatch(/secret scan after the setup script: [1-9]\d* changed file/);
    expect(miss.stderr).not.toContain(SECRET);
  }, 300_000);

  it('a scan whose tool fails fails the attempt, never "nothing found"', async () => {
    const file = writeLifecycleEnvFile(
      work,
      'broken-find',
      repo.dir,
      [
        'secrets: [API_TOKEN]',
        'setup: |',
        '  echo "//registry.example/:_authToken=$API_TOKEN" > /root/.npmrc',
        // First on PATH: the scan's find now fails.
        "  printf '#!/bin/sh\\nexit 1\\n' > /usr/local/bin/find && chmod +x /usr/local/bin/find",
        '',
      ].join('\n'),
    );
    const run = await runJson({
      ...lifecycleRunOptions({ work, instance, image, apiToken: SECRET }),
      envFile: file,
      command: 'cat /root/.npmrc',
    });
    expect(run.code).toBe(1);
    const attempt = run.result.attempts[0];
    expect(attempt?.status).toBe('failed');
    expect(attempt?.error).toContain('the secret scan after the setup script did not finish');
    expect(attempt?.error).toContain('find failed');
    expect(attempt?.commands ?? []).toEqual([]);
  }, 300_000);
});
