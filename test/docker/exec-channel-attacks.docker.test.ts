import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { removeInstanceContainers, removeInstanceImages } from '../support/docker-cleanup.js';
import {
  lifecycleRunOptions,
  lifecycleTestImage,
  makeSampleRepository,
  runJson,
  writeLifecycleEnvFile,
} from './lifecycle-support.js';
import { MB, watchMemory } from './memory-watch.js';
import { testImage } from './runtime-test-image.js';

/**
 * The exec channel against the sandbox it serves (issue 21, item 7). Commands run as root beside
 * Berth's exec agent; they must not reach it (forge frames on its stdout, read the orchestrator's
 * frames on its stdin), and should the agent itself be hostile (an image whose perl a hostile
 * sandbox replaced), its frames are checked: a header claiming 4 GiB drops the channel with the
 * reason at once, memory flat. Each step runs under a memory guard that aborts it past 256 MB of
 * growth, so the old code fails here instead of taking the machine's memory.
 */

const runtime = new DockerRuntime({ instance: `test-channel-${randomBytes(4).toString('hex')}` });
/** The same engine without the agent: prepares a sandbox before any agent runs in it. */
const plain = new DockerRuntime({ instance: 'test-channel-plain', execChannel: 'engine' });
const made: string[] = [];

async function sandbox(): Promise<string> {
  const info = await runtime.create({
    image: await testImage(),
    labels: { 'berth.task': 'channel-test' },
    resources: { cpus: 1, memoryMb: 256, pids: 256 },
  });
  made.push(info.id);
  await runtime.start(info.id);
  return info.id;
}

let id: string;
beforeAll(async () => {
  id = await sandbox();
});
afterAll(async () => {
  await Promise.all(made.map((m) => runtime.remove(m)));
});

/** A forged agent frame as printf(1) escapes: type, id (u32 BE), length (u32 BE). */
function header(type: string, frameId: number, length: number): string {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32BE(frameId, 0);
  bytes.writeUInt32BE(length >>> 0, 4);
  return type + [...bytes].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
}

describe('the exec channel against its sandbox (docker)', () => {
  it('a command cannot reach the agent: no forged 4 GiB frame, no forged exit, no reading its stdin', async () => {
    // The command's parent is the agent. Every step prints what happened to it.
    const script = `agent=$PPID
{ printf '${header('1', 1, 0xffffffff)}'; head -c 200M /dev/zero; } 2>/dev/null > /proc/$agent/fd/1 && echo 'stdout: written' || echo 'stdout: refused'
printf '${header('X', 1, 1)}0' 2>/dev/null > /proc/$agent/fd/1 && echo 'exit frame: written' || echo 'exit frame: refused'
timeout 1 head -c 1 /proc/$agent/fd/0 >/dev/null 2>&1; [ $? -eq 1 ] && echo 'stdin: refused' || echo 'stdin: opened'
cat /proc/$agent/environ >/dev/null 2>&1 && echo 'environ: read' || echo 'environ: refused'
echo done`;
    const watch = watchMemory(256 * MB);
    const outcome = await runtime
      .exec(id, { script, timeoutMs: 15_000, signal: watch.signal })
      .catch((e: unknown) => e);
    const growth = watch.stop();
    expect(outcome).not.toBeInstanceOf(Error);
    const result = outcome as { exitCode: number; output: string; timedOut: boolean };
    expect(result.timedOut).toBe(false);
    expect(result.output.trim().split('\n')).toEqual([
      'stdout: refused',
      'exit frame: refused',
      'stdin: refused',
      'environ: refused',
      'done',
    ]);
    expect(result.exitCode).toBe(0);
    expect(growth).toBeLessThan(64 * MB);
    // The channel still works.
    expect((await runtime.exec(id, { argv: ['echo', 'ok'] })).output).toBe('ok\n');
  });

  describe('a hostile agent (an image whose perl a hostile sandbox replaced)', () => {
    let hostile: string;
    beforeAll(async () => {
      hostile = await sandbox();
      // The "agent" says hello, waits for the first command and sends what /etc/forge prints.
      const fake = `#!/bin/sh\nprintf '${header('H', 0, 0)}'\nhead -c 9 >/dev/null\n. /etc/forge\nexec sleep 30\n`;
      const prepared = await plain.exec(hostile, {
        argv: ['bash', '-c', 'cat > /usr/bin/perl'],
        stdin: fake,
      });
      expect(prepared.exitCode, prepared.output).toBe(0);
    });

    /** Runs one command through a fresh runtime (a fresh agent) whose agent sends `forge`. */
    async function forged(
      forge: string,
    ): Promise<{ outcome: unknown; growth: number; next: unknown }> {
      await plain.exec(hostile, { argv: ['bash', '-c', 'cat > /etc/forge'], stdin: forge });
      const fresh = new DockerRuntime({ instance: 'test-channel-fresh' });
      const watch = watchMemory(256 * MB);
      const outcome = await fresh
        .exec(hostile, { argv: ['true'], timeoutMs: 15_000, signal: watch.signal })
        .catch((e: unknown) => e);
      const growth = watch.stop();
      const next = await fresh.exec(hostile, { argv: ['true'] }).catch((e: unknown) => e);
      return { outcome, growth, next };
    }

    it.each([
      [
        'a header claiming 4 GiB (and 200 MB behind it)',
        `printf '${header('1', 1, 0xffffffff)}'; head -c 200M /dev/zero`,
        /a frame header claims 4294967295 bytes, above the limit of 262144/,
      ],
      [
        'an unknown frame type',
        `printf '${header('Z', 1, 0)}'`,
        /a frame of an unknown type \(90\)/,
      ],
      ['a second hello', `printf '${header('H', 0, 0)}'`, /a frame of an unknown type \(72\)/],
      [
        'output for a command never started',
        `printf '${header('1', 99, 1)}a'`,
        /a frame for command 99, which was never started/,
      ],
      [
        'an exit frame without a code',
        `printf '${header('X', 1, 3)}abc'`,
        /an exit frame without an exit code of 0-255/,
      ],
    ])(
      '%s: the channel is dropped with the reason at once, memory flat',
      async (_, forge, reason) => {
        const { outcome, growth, next } = await forged(forge);
        expect(outcome).toBeInstanceOf(BerthError);
        expect((outcome as BerthError).message).toMatch(
          /exec channel into the sandbox broke its protocol/,
        );
        expect((outcome as BerthError).message).toMatch(reason);
        expect((outcome as BerthError).details.reason).toBe('exec_channel');
        expect(growth).toBeLessThan(64 * MB);
        // Nothing more runs in that sandbox: the attempt fails with the reason.
        expect(next).toBe(outcome);
      },
    );
  });

  it("keeps a command's time limit when the agent is stopped from inside the sandbox", async () => {
    const stopped = await runtime.exec(id, {
      script: 'kill -STOP $PPID; sleep 60',
      timeoutMs: 1_000,
    });
    expect(stopped.timedOut).toBe(true);
    expect(stopped.exitCode).toBe(137);
    // The stopped agent is dropped; later commands take the Engine-API path.
    expect((await runtime.exec(id, { argv: ['echo', 'still'] })).output).toBe('still\n');
  });
});

describe('an attempt whose cache image carries a hostile perl (docker)', () => {
  const instance = `chanattempt-${process.pid}`;
  let repo: ReturnType<typeof makeSampleRepository>;
  let work: string;
  beforeAll(() => {
    repo = makeSampleRepository();
    work = mkdtempSync(join(tmpdir(), 'berth-channel-'));
  });
  afterAll(() => {
    removeInstanceContainers(instance);
    removeInstanceImages(instance);
    rmSync(work, { recursive: true, force: true });
    rmSync(repo.dir, { recursive: true, force: true });
  });

  it('fails with the protocol violation as its reason, within its time limit, memory flat', async () => {
    // The setup (a hostile repository's) replaces perl. The sandbox is restarted after setup
    // (nothing setup started runs on), and the restarted sandbox's exec agent is the fake, which
    // forges a 4 GiB frame after the first command: caught in the setup's own attempt, before a
    // cache image could keep it.
    const file = writeLifecycleEnvFile(
      work,
      'hostile-perl',
      repo.dir,
      [
        'setup: |',
        // The running agent is /usr/bin/perl: unlinked, not overwritten.
        "  rm -f /usr/bin/perl && cat > /usr/bin/perl <<'SH'",
        '  #!/bin/sh',
        `  printf '${header('H', 0, 0)}'`,
        '  head -c 9 >/dev/null',
        `  printf '${header('1', 1, 0xffffffff)}'`,
        '  exec head -c 200M /dev/zero',
        '  SH',
        '  chmod 755 /usr/bin/perl',
        'resources:',
        '  timeoutMs: 60000',
        '',
      ].join('\n'),
    );
    const options = {
      ...lifecycleRunOptions({ work, instance, image: lifecycleTestImage(), apiToken: 'x' }),
      envFile: file,
      command: 'true',
    };
    const watch = watchMemory(256 * MB);
    const run = await runJson(options);
    const growth = watch.stop();
    expect(run.stderr).toContain('cache miss');
    expect(run.stderr).toContain('the sandbox was restarted');
    const attempt = run.result.attempts[0];
    expect(attempt?.status).toBe('failed');
    expect(attempt?.error).toMatch(
      /exec channel into the sandbox broke its protocol \(a frame header claims 4294967295 bytes/,
    );
    expect(attempt?.errorDetails).toMatchObject({ reason: 'exec_channel' });
    expect(growth).toBeLessThan(64 * MB);
  }, 180_000);
});
