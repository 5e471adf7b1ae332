import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import { applyPatch } from '../../src/agent/patch/apply-patch.js';
import { collectChanges } from '../../src/lifecycle/results.js';
import type { SandboxContext } from '../../src/lifecycle/sandbox-context.js';
import { readSandboxFile } from '../../src/lifecycle/sandbox-files.js';
import { SANDBOX_STATE_DIR } from '../../src/lifecycle/setup-script.js';
import { SecretMasker } from '../../src/secrets/secret-masker.js';
import { startAgentTestSandbox, type AgentTestSandbox } from './agent-support.js';
import { MB, watchMemory } from './memory-watch.js';

/**
 * Reading files a hostile sandbox controls (issue 21, item 4): the diff and numstat the results
 * read, the files `apply_patch` reads. A symlink to /dev/zero, a FIFO, a device or a sparse 2 GB
 * file in their place is refused before its content is read, and the orchestrator's memory stays
 * flat. Each step runs under a memory guard that aborts it past 256 MB of growth, so the old
 * code (which read everything) fails here instead of taking the machine's memory.
 */

let box: AgentTestSandbox;

beforeAll(async () => {
  box = await startAgentTestSandbox();
});
afterAll(async () => {
  await box?.remove();
});

function contextWith(signal: AbortSignal): SandboxContext {
  return {
    runtime: box.runtime,
    sandboxId: box.id,
    workdir: '/workspace',
    emit: () => undefined,
    masker: new SecretMasker([]),
    signal,
  };
}

/** A committed repository in /workspace with one change on top; its base commit. */
async function repositoryWithAChange(): Promise<string> {
  await box.reset({ 'a.txt': 'one\n' });
  const r = await box.sh(
    `rm -rf ${SANDBOX_STATE_DIR} /usr/local/bin/git && mkdir -p ${SANDBOX_STATE_DIR} &&
     cd /workspace && git init -q -b main && git add -A &&
     git -c user.name=t -c user.email=t@t commit -qm one && echo two >> a.txt && git rev-parse HEAD`,
  );
  expect(r.exitCode, r.output).toBe(0);
  return r.output.trim().split('\n').at(-1) ?? '';
}

describe('reads from a hostile sandbox (docker)', () => {
  it('refuses result.diff made a symlink to /dev/zero, memory flat', async () => {
    const base = await repositoryWithAChange();
    // The agent runs as root: it can leave a symlink where the results write the diff
    // (the diff script's `>` writes through it into /dev/zero and leaves it in place).
    await box.sh(`ln -s /dev/zero ${SANDBOX_STATE_DIR}/result.diff`);
    const watch = watchMemory(256 * MB);
    const outcome = await collectChanges(contextWith(watch.signal), base).catch((e: unknown) => e);
    const growth = watch.stop();
    expect(outcome).toBeInstanceOf(BerthError);
    expect((outcome as BerthError).message).toMatch(/result\.diff.*not a regular file/);
    expect(growth).toBeLessThan(64 * MB);
  });

  it('refuses a sparse 2 GB result.diff by its size, before reading it, memory flat', async () => {
    const base = await repositoryWithAChange();
    // Every program the results run in the sandbox may be replaced: here git, which leaves a 2 GB
    // sparse file (no disk used) as the diff.
    await box.sh(`cat > /usr/local/bin/git <<'SH'
#!/bin/sh
/usr/bin/git "$@"; rc=$?
case " $* " in *" diff --cached --binary "*) truncate -s 2G ${SANDBOX_STATE_DIR}/result.diff ;; esac
exit $rc
SH
chmod 755 /usr/local/bin/git`);
    const watch = watchMemory(256 * MB);
    const outcome = await collectChanges(contextWith(watch.signal), base).catch((e: unknown) => e);
    const growth = watch.stop();
    await box.sh('rm -f /usr/local/bin/git');
    expect(outcome).toBeInstanceOf(BerthError);
    expect((outcome as BerthError).message).toMatch(
      /result\.diff.*holds 2147483648 bytes, above the limit/,
    );
    expect(growth).toBeLessThan(64 * MB);
  });

  it('refuses a FIFO and a device by their type, without waiting on them', async () => {
    await box.sh(`rm -f /tmp/fifo && mkfifo /tmp/fifo`);
    const watch = watchMemory(256 * MB);
    const fifo = await readSandboxFile(box.runtime, box.id, '/tmp/fifo', watch.signal).catch(
      (e: unknown) => e,
    );
    const device = await readSandboxFile(box.runtime, box.id, '/dev/urandom', watch.signal).catch(
      (e: unknown) => e,
    );
    const growth = watch.stop();
    expect((fifo as Error).message).toMatch(/\/tmp\/fifo.*not a regular file \(fifo\)/);
    expect((device as Error).message).toMatch(
      /\/dev\/urandom.*not a regular file \(character special file\)/,
    );
    expect(growth).toBeLessThan(64 * MB);
  });

  it('apply_patch refuses a file above its cap by the size, before reading it', async () => {
    await box.reset({ 'small.txt': 'a\n' });
    await box.sh('truncate -s 512M /workspace/big.txt');
    const watch = watchMemory(256 * MB);
    const outcome = await applyPatch(
      box.sandbox,
      '*** Begin Patch\n*** Update File: big.txt\n@@\n-x\n+y\n*** End Patch\n',
      watch.signal,
    ).catch((e: unknown) => e);
    const growth = watch.stop();
    expect(outcome).toBeInstanceOf(BerthError);
    expect((outcome as BerthError).code).toBe('invalid_input');
    expect((outcome as BerthError).message).toMatch(/big\.txt is 536870912 bytes, above the/);
    expect(growth).toBeLessThan(64 * MB);
  });
});
