import { mkdtempSync, rmSync } from 'node:fs';
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
 * Setup-only secrets do not reach the agent phase (issue 21 item 8), through `berth run --json`
 * on a real engine, on a cache miss (the agent runs in the setup's own container). The setup
 * script hides the secret the ways a leftover can: a background process that sets the old scan's
 * marker variable, clears its environment (exec with `env -i`) and keeps the value in memory;
 * files in /dev/shm (tmpfs), /run, /var/lib and /tmp with their mtime set to the past; and it
 * deletes the file the old scan took its start time from. The agent phase then looks for the
 * value in every process's environment, command line and memory, and in those files.
 */

const SECRET = 'leftover-s3cret-42c9-value';
const instance = `leftover-${process.pid}`;
let image: string;
let repo: ReturnType<typeof makeSampleRepository>;
let work: string;

beforeAll(() => {
  image = lifecycleTestImage();
  repo = makeSampleRepository();
  work = mkdtempSync(join(tmpdir(), 'berth-leftover-'));
});

afterAll(() => {
  removeInstanceImages(instance);
  rmSync(work, { recursive: true, force: true });
  rmSync(repo.dir, { recursive: true, force: true });
});

const FILES = ['/dev/shm/leak', '/run/leak.conf', '/var/lib/leak/token', '/tmp/leak'];

/** The agent phase's search: every process's memory, environment and argv, and the files. */
const SEARCH = String.raw`
perl -e '
  my $secret = $ARGV[0] . $ARGV[1];
  for my $dir (glob "/proc/[0-9]*") {
    my ($pid) = $dir =~ /(\d+)$/;
    next if $pid == $$;
    for my $f ("environ", "cmdline") {
      open my $h, "<", "$dir/$f" or next; local $/; my $t = <$h>;
      print "HIT-$f $pid\n" if index($t, $secret) >= 0;
    }
    open my $maps, "<", "$dir/maps" or next;
    open my $mem, "<:raw", "$dir/mem" or next;
    while (<$maps>) {
      my ($from, $to, $perm) = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/ or next;
      next unless $perm =~ /^r/;
      my ($a, $b) = (hex $from, hex $to);
      next if $b - $a > 256 * 1024 * 1024;
      seek($mem, $a, 0) or next;
      my $got = sysread($mem, my $buf, $b - $a);
      print "HIT-mem $pid\n" if $got && index($buf, $secret) >= 0;
    }
    print "process $pid: ", do { open my $c, "<", "$dir/cmdline"; local $/; my $t = <$c> // ""; $t =~ s/\0/ /g; substr($t, 0, 40) }, "\n";
  }
' "${SECRET.slice(0, 10)}" "${SECRET.slice(10)}"
for f in ${FILES.join(' ')}; do [ -e "$f" ] && echo "file $f present" || echo "file $f gone"; done
`;

describe('setup leaves nothing with a secret to the agent phase (docker)', () => {
  it('stops every process setup started and removes the files it wrote the secret into', async () => {
    const setup = [
      'secrets: [API_TOKEN]',
      'setup: |',
      // The value on stdin only: the process's environment is the marker alone.
      '  printf %s "$API_TOKEN" | setsid nohup env -i BERTH_SCAN_0=x perl -e \'$0 = "hidden-leftover"; $v = <STDIN>; $k = $v x 3; sleep 600\' > /dev/null 2>&1 &',
      '  mkdir -p /var/lib/leak',
      ...FILES.map((f) => `  echo "token=$API_TOKEN" > ${f}`),
      `  touch -d 2001-01-01 ${FILES.join(' ')}`,
      '  rm -f /var/lib/berth/setup.env-start',
      '  sleep 1',
      '',
    ];
    const file = writeLifecycleEnvFile(work, 'leftovers', repo.dir, setup.join('\n'));
    const run = await runJson({
      ...lifecycleRunOptions({ work, instance, image, apiToken: SECRET }),
      envFile: file,
      command: SEARCH,
    });
    expect(run.code, run.stderr).toBe(0);
    const attempt = run.result.attempts[0];
    expect(attempt?.cacheHit).toBe(false);
    const output = attempt?.commands[0]?.output ?? '';
    // The search ran (it lists the processes it looked at), and found nothing.
    expect(output).toMatch(/^process 1: /m);
    expect(output).not.toContain('HIT-');
    expect(output).not.toContain('hidden-leftover');
    for (const f of FILES) expect(output).toContain(`file ${f} gone`);
    // The log says what was stopped and removed.
    expect(run.stderr).toMatch(
      /stopped 1 process\(es\) left running by the setup script.*hidden-leftover/,
    );
    // /dev/shm is a tmpfs the restart after the script emptied; the scan removed the others.
    expect(run.stderr).toContain('the sandbox was restarted');
    const written = FILES.filter((f) => !f.startsWith('/dev/shm/'));
    expect(run.stderr).toContain(
      `the setup script wrote a secret value into ${written.length} file(s)`,
    );
    for (const f of written) expect(run.stderr).toContain(f);
    expect(run.stderr).not.toContain(SECRET);
    // Nor does the cache image the setup was committed to (the files were removed before it).
    const cached = await runJson({
      ...lifecycleRunOptions({ work, instance, image, apiToken: SECRET }),
      envFile: file,
      command: `grep -rlsF "${SECRET.slice(0, 10)}""${SECRET.slice(10)}" ${FILES.join(' ')} /var/lib /run /root /tmp; echo searched`,
    });
    expect(cached.code, cached.stderr).toBe(0);
    expect(cached.result.attempts[0]?.cacheHit).toBe(true);
    expect(cached.result.attempts[0]?.commands[0]?.output.trim()).toBe('searched');
  }, 300_000);

  it('refuses the attempt, naming the file, when a short value (a chance match?) is left outside the workspace', async () => {
    const file = writeLifecycleEnvFile(
      work,
      'short-leftover',
      repo.dir,
      ['secrets: [API_TOKEN]', 'setup: |', '  echo "pin=$API_TOKEN" > /run/short.conf', ''].join(
        '\n',
      ),
    );
    const run = await runJson({
      ...lifecycleRunOptions({ work, instance, image, apiToken: 'q7x2k9' }),
      envFile: file,
      command: 'echo agent-ran',
    });
    expect(run.code).toBe(1);
    const attempt = run.result.attempts[0];
    expect(attempt?.status).toBe('failed');
    expect(attempt?.error).toContain('/run/short.conf');
    expect(attempt?.commands ?? []).toEqual([]);
  }, 300_000);
});
