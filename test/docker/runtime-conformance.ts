import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import type {
  OutputChunk,
  SandboxRuntime,
  SandboxResources,
} from '../../src/ports/sandbox-runtime.js';

/**
 * The SandboxRuntime conformance suite: every adapter runs it. The image must be Debian-based
 * with bash, coreutils and perl-base (Berth's `minimal` image is).
 */
export interface ConformanceContext {
  runtime: SandboxRuntime;
  image: string;
  /** A fresh runtime object for the same engine and instance ("another orchestrator process"). */
  makeRuntime(): SandboxRuntime;
}

const RESOURCES: SandboxResources = { cpus: 1, memoryMb: 256, pids: 128 };

/** Capability numbers (linux/capability.h) that must never be effective inside a sandbox. */
const FORBIDDEN_CAPS = {
  NET_ADMIN: 12,
  NET_RAW: 13,
  SYS_MODULE: 16,
  SYS_PTRACE: 19,
  SYS_ADMIN: 21,
};

/**
 * `options.skipHeavy`: why the heavy case (a gigabyte of output) is skipped for this run, if it
 * is; e.g. a second exec path of one adapter that shares its output handling with the first.
 */
export function runtimeConformance(
  name: string,
  setup: () => Promise<ConformanceContext>,
  options: { skipHeavy?: string } = {},
): void {
  describe(`SandboxRuntime conformance: ${name}`, () => {
    let ctx: ConformanceContext;
    let runtime: SandboxRuntime;
    const run = randomBytes(4).toString('hex');
    const labels = { 'berth.task': `conformance-${run}` };
    const made: string[] = [];

    const sandbox = async (
      extra: Partial<SandboxResources> = {},
      more: Record<string, string> = {},
    ): Promise<string> => {
      const info = await runtime.create({
        image: ctx.image,
        labels: { ...labels, ...more },
        resources: { ...RESOURCES, ...extra },
      });
      made.push(info.id);
      await runtime.start(info.id);
      return info.id;
    };
    let shared: string;

    beforeAll(async () => {
      ctx = await setup();
      runtime = ctx.runtime;
      shared = await sandbox();
    });

    afterAll(async () => {
      if (runtime === undefined) return;
      for (const id of made) await runtime.remove(id);
    });

    const sh = async (id: string, script: string): Promise<string> => {
      const result = await runtime.exec(id, { script });
      expect(result.exitCode, result.output).toBe(0);
      return result.stdout;
    };

    /** Command lines of the processes alive in a sandbox, read from /proc (no ps needed). */
    const processes = async (id: string): Promise<string[]> => {
      const out = await sh(
        id,
        'for p in /proc/[0-9]*; do [ "$(cut -d" " -f3 $p/stat 2>/dev/null)" = Z ] && continue; tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done',
      );
      return out.split('\n').filter((l) => l.trim() !== '');
    };

    it('reports what it is', async () => {
      const info = await runtime.info();
      expect(info.name).not.toBe('');
      expect(info.version).not.toBe('');
    });

    it('creates sandboxes carrying the given labels plus the managed labels', async () => {
      const [info] = await runtime.list({ ...labels });
      expect(info?.labels).toMatchObject({ ...labels, 'berth.managed': 'true' });
      expect(info?.labels['berth.instance']).toBeTruthy();
      expect(info?.state).toBe('running');
    });

    it('runs argv and scripts, with env, workdir and user per call', async () => {
      const argv = await runtime.exec(shared, { argv: ['printf', '%s|', 'a b', '$HOME', ';'] });
      expect(argv.stdout).toBe('a b|$HOME|;|');
      const script = await runtime.exec(shared, {
        script: 'echo "$GREETING from $(pwd) as $(id -un)"',
        env: { GREETING: 'hello world' },
        workdir: '/tmp',
        user: 'nobody',
      });
      expect(script).toMatchObject({
        exitCode: 0,
        stdout: 'hello world from /tmp as nobody\n',
        timedOut: false,
      });
      const numeric = await runtime.exec(shared, { argv: ['id', '-u'], user: '65534' });
      expect(numeric.stdout).toBe('65534\n');
      const again = await runtime.exec(shared, { script: 'echo "[$GREETING]"' });
      expect(again.stdout).toBe('[]\n');
    });

    it('runs login scripts through bash -l', async () => {
      await runtime.writeFile(
        shared,
        '/etc/profile.d/berth-conformance.sh',
        'export FROM_PROFILE=yes\n',
      );
      expect(
        (await runtime.exec(shared, { script: 'echo "$FROM_PROFILE"', login: true })).stdout,
      ).toBe('yes\n');
      expect((await runtime.exec(shared, { script: 'echo "$FROM_PROFILE"' })).stdout).toBe('\n');
    });

    it('feeds stdin', async () => {
      const result = await runtime.exec(shared, {
        argv: ['wc', '-c'],
        stdin: Buffer.alloc(3 * 1024 * 1024, 'x'),
      });
      expect(result.stdout.trim()).toBe(String(3 * 1024 * 1024));
      const text = await runtime.exec(shared, { argv: ['cat'], stdin: 'über\n' });
      expect(text.stdout).toBe('über\n');
    });

    it('streams stdout and stderr in the order they were written', async () => {
      const chunks: OutputChunk[] = [];
      const result = await runtime.exec(shared, {
        script:
          'for i in 1 2 3; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done; exit 7',
        onOutput: (chunk) => chunks.push(chunk),
      });
      expect(result.exitCode).toBe(7);
      const seen = chunks.map((c) => `${c.stream}:${c.data.toString().trim()}`);
      expect(seen).toEqual([
        'stdout:out1',
        'stderr:err1',
        'stdout:out2',
        'stderr:err2',
        'stdout:out3',
        'stderr:err3',
      ]);
      expect(result.output).toBe('out1\nerr1\nout2\nerr2\nout3\nerr3\n');
      expect(result.stdout).toBe('out1\nout2\nout3\n');
      expect(result.stderr).toBe('err1\nerr2\nerr3\n');
    });

    it('returns exit codes, and 127 with a message for a missing binary', async () => {
      expect((await runtime.exec(shared, { argv: ['false'] })).exitCode).toBe(1);
      expect((await runtime.exec(shared, { script: 'exit 42' })).exitCode).toBe(42);
      const missing = await runtime.exec(shared, { argv: ['no-such-binary-here', '--flag'] });
      expect(missing.exitCode).toBe(127);
      expect(missing.stderr).toMatch(/no-such-binary-here.*not found/);
    });

    it('ends a command at its timeout, killing what it started', async () => {
      const started = Date.now();
      const result = await runtime.exec(shared, {
        script: 'sleep 211 & sleep 212; echo never',
        timeoutMs: 500,
      });
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).not.toBe(0);
      expect(result.stdout).not.toContain('never');
      expect(Date.now() - started).toBeLessThan(20_000);
      await expect
        .poll(async () => (await processes(shared)).filter((p) => /sleep 21[12]/.test(p)))
        .toEqual([]);
    });

    it('an abort kills the whole process tree, daemonised children included', async () => {
      const controller = new AbortController();
      const pending = runtime.exec(shared, {
        script:
          'sleep 301 & (sleep 302 &) & setsid sleep 303 & bash -c "sleep 304" & echo started; wait',
        signal: controller.signal,
        onOutput: (chunk) => {
          if (chunk.data.toString().includes('started')) setTimeout(() => controller.abort(), 200);
        },
      });
      await expect(pending).rejects.toMatchObject({ code: 'cancelled' });
      await expect
        .poll(async () => (await processes(shared)).filter((p) => /sleep 30[1-4]/.test(p)))
        .toEqual([]);
    });

    it('rejects an already aborted call without running it', async () => {
      await runtime.exec(shared, { argv: ['rm', '-f', '/tmp/aborted-marker'] });
      const controller = new AbortController();
      controller.abort();
      await expect(
        runtime.exec(shared, { argv: ['touch', '/tmp/aborted-marker'], signal: controller.signal }),
      ).rejects.toMatchObject({ code: 'cancelled' });
      expect(
        (await runtime.exec(shared, { argv: ['test', '-e', '/tmp/aborted-marker'] })).exitCode,
      ).toBe(1);
    });

    it('reads and writes files, creating parent directories', async () => {
      const data = randomBytes(200_000);
      await runtime.writeFile(shared, '/tmp/conf/deep/blob.bin', data, 0o600);
      expect((await runtime.readFile(shared, '/tmp/conf/deep/blob.bin')).equals(data)).toBe(true);
      expect(await sh(shared, 'stat -c %a /tmp/conf/deep/blob.bin')).toBe('600\n');
      await runtime.writeFile(shared, '/tmp/conf/text.txt', 'hello\n');
      expect(await sh(shared, 'cat /tmp/conf/text.txt')).toBe('hello\n');
      await expect(runtime.readFile(shared, '/tmp/conf/none.txt')).rejects.toMatchObject({
        code: 'not_found',
      });
      await expect(runtime.readFile(shared, '/tmp/conf')).rejects.toBeInstanceOf(BerthError);
    });

    it('copies a tar archive in and out', async () => {
      const pack = tarStream.pack();
      pack.entry({ name: 'proj/', type: 'directory', mode: 0o755 });
      pack.entry({ name: 'proj/a.txt', mode: 0o644 }, 'A\n');
      pack.entry({ name: 'proj/bin/run.sh', mode: 0o755 }, '#!/bin/sh\necho ran\n');
      pack.finalize();
      await runtime.putArchive(shared, '/srv', Readable.from(pack));
      expect(await sh(shared, '/srv/proj/bin/run.sh && cat /srv/proj/a.txt')).toBe('ran\nA\n');

      await sh(shared, 'echo B > /srv/proj/b.txt');
      const out = await runtime.getArchive(shared, '/srv/proj');
      const extract = tarStream.extract();
      out.pipe(extract);
      const files: Record<string, string> = {};
      for await (const entry of extract) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
        if (entry.header.type === 'file')
          files[entry.header.name] = Buffer.concat(chunks).toString();
      }
      expect(files).toEqual({
        'proj/a.txt': 'A\n',
        'proj/b.txt': 'B\n',
        'proj/bin/run.sh': '#!/bin/sh\necho ran\n',
      });
    });

    it('commits a sandbox to a labelled image that new sandboxes start from', async () => {
      const id = await sandbox();
      await sh(id, 'mkdir -p /work && echo state > /work/state.txt');
      const image = await runtime.commit(id, {
        repository: `berth-conformance-${run}`,
        tag: 'snap',
        labels: { 'berth.kind': 'snapshot', ...labels },
      });
      try {
        expect(image.tags).toContain(`berth-conformance-${run}:snap`);
        expect(image.labels).toMatchObject({
          'berth.kind': 'snapshot',
          'berth.managed': 'true',
          ...labels,
        });
        expect(await runtime.imageExists(`berth-conformance-${run}:snap`)).toBe(true);
        const listed = await runtime.listImages(labels);
        expect(listed.map((i) => i.id)).toContain(image.id);
        const child = await runtime.create({ image: image.id, labels, resources: RESOURCES });
        made.push(child.id);
        await runtime.start(child.id);
        expect(await sh(child.id, 'cat /work/state.txt')).toBe('state\n');
        await runtime.remove(child.id);
      } finally {
        await runtime.removeImage(image.id);
      }
      expect(await runtime.imageExists(`berth-conformance-${run}:snap`)).toBe(false);
    });

    it('connects to and disconnects from networks', async () => {
      const a = await sandbox();
      const b = await sandbox();
      const net = await runtime.createNetwork({
        name: `berth-conf-${run}`,
        internal: true,
        labels,
      });
      try {
        expect(net.labels).toMatchObject({
          ...labels,
          'berth.kind': 'network',
          'berth.managed': 'true',
        });
        expect((await runtime.listNetworks(labels)).map((n) => n.name)).toContain(net.name);
        const interfaces = async (id: string): Promise<string> =>
          sh(id, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '");
        expect(await interfaces(a)).toBe('lo ');
        await runtime.connect(a, net.name, { aliases: ['alpha'] });
        await runtime.connect(b, net.name);
        expect(await interfaces(a)).toBe('eth0 lo ');
        // b reaches a by its alias over the new network (bash's /dev/tcp; a listens with perl).
        await runtime.exec(a, {
          script:
            'perl -MIO::Socket::INET -e \'$s=IO::Socket::INET->new(LocalPort=>7000,Listen=>1,ReuseAddr=>1) or die; $c=$s->accept; print $c "pong\\n"; close $c\' >/dev/null 2>&1 & sleep 0.3',
        });
        const ping = await runtime.exec(b, {
          script: 'exec 3<>/dev/tcp/alpha/7000 && head -n1 <&3',
          timeoutMs: 10_000,
        });
        expect(ping.stdout).toBe('pong\n');
        await runtime.disconnect(a, net.name);
        expect(await interfaces(a)).toBe('lo ');
        await runtime.disconnect(b, net.name);
      } finally {
        await runtime.removeNetwork(net.name);
      }
      expect((await runtime.listNetworks(labels)).map((n) => n.name)).not.toContain(net.name);
    });

    it('lists by labels and removes', async () => {
      const mine = await sandbox({}, { 'berth.attempt': `pick-${run}` });
      const other = await sandbox({}, { 'berth.attempt': `other-${run}` });
      const picked = await runtime.list({ 'berth.attempt': `pick-${run}` });
      expect(picked.map((s) => s.id)).toEqual([mine]);
      await runtime.stop(other, 1000);
      expect((await runtime.list({ 'berth.attempt': `other-${run}` }))[0]?.state).toBe('exited');
      await runtime.remove(other);
      await runtime.remove(mine);
      await runtime.remove(mine); // removing twice is fine
      expect(await runtime.list({ 'berth.attempt': `pick-${run}` })).toEqual([]);
    });

    describe('hardening, checked from inside', () => {
      it('drops dangerous capabilities and sets no-new-privileges', async () => {
        const status = await sh(shared, 'cat /proc/self/status');
        const capEff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(status)?.[1] ?? 'ffffffffff'}`);
        const capBnd = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(status)?.[1] ?? 'ffffffffff'}`);
        for (const [capName, bit] of Object.entries(FORBIDDEN_CAPS)) {
          expect(capEff & (1n << BigInt(bit)), `${capName} effective`).toBe(0n);
          expect(capBnd & (1n << BigInt(bit)), `${capName} in bounding set`).toBe(0n);
        }
        expect(status).toMatch(/NoNewPrivs:\s*1/);
        // Behaviour, not just bits: raw sockets and mounts are refused.
        const mount = await runtime.exec(shared, {
          script: 'mkdir -p /mnt/x && mount -t tmpfs none /mnt/x',
        });
        expect(mount.exitCode).not.toBe(0);
        const raw = await runtime.exec(shared, {
          argv: ['perl', '-e', 'socket(my $s, 2, 3, 1) or exit 3; exit 0'],
        });
        expect(raw.exitCode).toBe(3);
      });

      it('has no docker socket and no host path mounted', async () => {
        const result = await runtime.exec(shared, {
          script:
            'ls -la /var/run/docker.sock /run/docker.sock 2>&1; find / -xdev -name "docker.sock" 2>/dev/null | head -n 3',
        });
        expect(result.stdout).not.toMatch(/^s/m);
        expect(result.stdout).toContain('No such file');
        const mounts = await sh(shared, 'cat /proc/self/mountinfo');
        // Only the engine's own files are mounted: resolv.conf, hostname, hosts, and (read-only)
        // the init binary; nothing else from the host.
        const lines = mounts.split('\n').filter((l) => l.trim() !== '');
        const binds = lines
          .map((l) => l.split(' ')[4] ?? '')
          .filter((target) => !/^\/(proc|sys|dev)(\/|$)/.test(target) && target !== '/');
        const allowed = [
          '/etc/hostname',
          '/etc/hosts',
          '/etc/resolv.conf',
          '/sbin/docker-init',
          '/usr/sbin/docker-init',
        ];
        expect(binds.filter((b) => !allowed.includes(b))).toEqual([]);
        for (const line of lines.filter((l) => /docker-init/.test(l.split(' ')[4] ?? ''))) {
          expect(line.split(' ')[5]).toMatch(/^ro/);
        }
      });

      it('has IPv6 off', async () => {
        expect(await sh(shared, 'cat /proc/sys/net/ipv6/conf/all/disable_ipv6')).toBe('1\n');
        expect(await sh(shared, 'cat /proc/sys/net/ipv6/conf/default/disable_ipv6')).toBe('1\n');
        expect(await sh(shared, 'cat /proc/net/if_inet6 2>/dev/null || true')).toBe('');
      });

      it('holds the memory limit', async () => {
        const id = await sandbox({ memoryMb: 96 });
        const result = await runtime.exec(id, {
          argv: ['perl', '-e', '$x = "x" x (400 * 1024 * 1024); print length($x), "\\n"'],
        });
        expect(result.exitCode).not.toBe(0);
        expect(result.stdout).not.toContain(String(400 * 1024 * 1024));
        // The sandbox itself survives and still answers.
        expect(await sh(id, 'echo alive')).toBe('alive\n');
      });

      it('holds the process limit against a fork bomb; the host and other sandboxes keep answering', async () => {
        const id = await sandbox({ pids: 64 });
        const bomb = runtime.exec(id, {
          script: 'bomb() { bomb | bomb & }; bomb; sleep 30',
          timeoutMs: 4000,
        });
        await new Promise((r) => setTimeout(r, 1500));
        // While the bomb runs: another sandbox answers and so does the host.
        expect(await sh(shared, 'echo other-ok')).toBe('other-ok\n');
        expect(execFileSync('sh', ['-c', 'echo host-ok'], { encoding: 'utf8' })).toBe('host-ok\n');
        const result = await bomb;
        expect(result.timedOut).toBe(true);
        // Once the bomb's last processes are gone the sandbox answers again, under its limit (on a
        // loaded machine the killing takes a while: an exec may still find no free pid).
        await expect
          .poll(
            async () => {
              const r = await runtime.exec(id, { script: 'echo "$(ls -d /proc/[0-9]* | wc -l)"' });
              return r.exitCode === 0 && Number(r.stdout.trim()) < 64;
            },
            { timeout: 30_000, interval: 250 },
          )
          .toBe(true);
      });
    });

    it.skipIf(options.skipHeavy !== undefined)(
      'keeps a gigabyte of output bounded: head, tail and a marker, orchestrator memory flat',
      async () => {
        let streamed = 0;
        const before = process.memoryUsage().rss;
        let peak = before;
        const result = await runtime.exec(shared, {
          script:
            'echo FIRST-LINE; head -c 1073741824 /dev/zero | tr "\\0" "y"; echo; echo LAST-LINE',
          maxOutputBytes: 64 * 1024,
          onOutput: (chunk) => {
            streamed += chunk.data.length;
            if (streamed % (64 * 1024 * 1024) < chunk.data.length)
              peak = Math.max(peak, process.memoryUsage().rss);
          },
          timeoutMs: 300_000,
        });
        peak = Math.max(peak, process.memoryUsage().rss);
        expect(result.exitCode).toBe(0);
        expect(streamed).toBe(1073741824 + 'FIRST-LINE\n'.length + 1 + 'LAST-LINE\n'.length);
        expect(result.output.startsWith('FIRST-LINE\nyyyy')).toBe(true);
        expect(result.output.endsWith('yyyy\nLAST-LINE\n')).toBe(true);
        expect(result.omittedBytes).toBe(streamed - 64 * 1024);
        expect(result.output).toContain(`[... ${result.omittedBytes} bytes of output omitted ...]`);
        expect(result.output.length).toBeLessThan(70 * 1024);
        expect(peak - before).toBeLessThan(100 * 1024 * 1024);
      },
      300_000,
    );

    it('ends an exec with sandbox_gone when the sandbox is killed from outside', async () => {
      const id = await sandbox();
      const pending = runtime.exec(id, { script: 'echo running; sleep 60' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      await new Promise((r) => setTimeout(r, 700));
      await ctx.makeRuntime().remove(id);
      const error = await pending;
      expect(error).toBeInstanceOf(BerthError);
      expect((error as BerthError).code).toBe('sandbox_gone');
      expect((error as BerthError).message).toContain(id);
      await expect(runtime.exec(id, { argv: ['true'] })).rejects.toMatchObject({
        code: 'sandbox_gone',
      });
    });

    it('refuses a missing image naming the build command', async () => {
      const error = await runtime
        .create({ image: 'berth/universal:no-such-tag', labels, resources: RESOURCES })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toMatchObject({ code: 'image_missing' });
      expect((error as Error).message).toContain('berth image build universal');
      const minimal = await runtime
        .create({ image: 'berth/minimal:no-such-tag', labels, resources: RESOURCES })
        .catch((e: unknown) => e);
      expect((minimal as Error).message).toContain('berth image build minimal');
    });
  });
}
