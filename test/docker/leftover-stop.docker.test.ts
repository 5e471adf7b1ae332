import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { killLeftoverProcesses, listProcesses } from '../../src/lifecycle/leftover-processes.js';
import type { SandboxContext } from '../../src/lifecycle/sandbox-context.js';
import { SecretMasker } from '../../src/secrets/secret-masker.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * The in-sandbox stop on its own (without the restart that follows it in an attempt), against
 * the two processes an adversarial review kept alive through it: one named `a) Z\n` (the first
 * line of its /proc/<pid>/stat reads as a zombie) and a thread group whose leader exited (its pid
 * shows state Z while another thread runs). Both must be found, named and killed.
 */

const runtime = new DockerRuntime({ instance: `test-stop-${randomBytes(4).toString('hex')}` });
let ctx: SandboxContext;

beforeAll(async () => {
  const info = await runtime.create({
    image: lifecycleTestImage(),
    labels: { 'berth.task': 'stop-test' },
    resources: { cpus: 1, memoryMb: 256, pids: 256 },
  });
  await runtime.start(info.id);
  ctx = {
    runtime,
    sandboxId: info.id,
    workdir: '/',
    emit: () => undefined,
    masker: new SecretMasker([]),
    signal: new AbortController().signal,
  };
}, 60_000);

afterAll(async () => {
  if (ctx !== undefined) await runtime.remove(ctx.sandboxId);
});

describe('the in-sandbox stop of leftover processes (docker)', () => {
  it('kills a process that fakes a zombie and a thread group whose leader exited', async () => {
    const keep = await listProcesses(ctx);
    const started = await runtime.exec(ctx.sandboxId, {
      script: [
        `setsid perl -e 'my $n = "a) Z\\n"; syscall(157, 15, $n, 0, 0, 0); sleep 600' </dev/null >/dev/null 2>&1 &`,
        `setsid perl -e 'use threads; $0 = "leaderless"; threads->create(sub { sleep 600 })->detach; select(undef, undef, undef, 0.2); syscall(60, 0)' </dev/null >/dev/null 2>&1 &`,
        'sleep 1',
        // Both are there: the fake zombie, and the leader in state Z with a live thread.
        "for d in /proc/[0-9]*; do printf '%s|' \"$(tr '\\n' '~' < $d/stat | cut -d' ' -f2-4)\"; done",
      ].join('\n'),
      timeoutMs: 20_000,
    });
    expect(started.stdout).toContain('(a) Z~) S');
    expect(started.stdout).toMatch(/\(leaderless\) Z/);
    const { stopped, complete } = await killLeftoverProcesses(ctx, keep);
    expect(complete).toBe(true);
    expect(stopped).toHaveLength(2);
    const after = await runtime.exec(ctx.sandboxId, {
      script: 'for d in /proc/[0-9]*; do cat $d/comm; done',
      timeoutMs: 10_000,
    });
    expect(after.stdout).not.toContain('a) Z');
    expect(after.stdout).not.toContain('leaderless');
    // What ran before is kept: the sandbox still answers and its processes are the same.
    const now = await listProcesses(ctx);
    for (const process of keep.filter((p) => now.includes(p))) expect(now).toContain(process);
    expect(now.filter((p) => keep.includes(p)).length).toBeGreaterThan(0);
  }, 60_000);
});
