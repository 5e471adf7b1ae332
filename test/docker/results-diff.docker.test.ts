import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { collectChanges } from '../../src/lifecycle/results.js';
import { recordTurnStart } from '../../src/lifecycle/follow-up-turn.js';
import type { SandboxContext } from '../../src/lifecycle/sandbox-context.js';
import { SANDBOX_STATE_DIR } from '../../src/lifecycle/setup-script.js';
import { SecretMasker } from '../../src/secrets/secret-masker.js';
import { startAgentTestSandbox, type AgentTestSandbox } from './agent-support.js';

/**
 * The attempt's diff must see every change, even one that keeps a file's size and lands in the
 * second its index entry was recorded (the checkout and the agent's first patch can be that
 * close): same size, same inode, same whole-second mtime. Git's own answer is its racy-index
 * check (an entry recorded in the second the index was written is compared by content), which
 * needs the index's own mtime kept.
 */

let box: AgentTestSandbox;
let ctx: SandboxContext;

beforeAll(async () => {
  box = await startAgentTestSandbox();
  ctx = {
    runtime: box.runtime,
    sandboxId: box.id,
    workdir: '/workspace',
    emit: () => undefined,
    masker: new SecretMasker([]),
    signal: new AbortController().signal,
  };
});
afterAll(async () => {
  await box?.remove();
});

/** A committed repository in /workspace; its commit. */
async function commitSample(): Promise<string> {
  await box.reset({ 'src/add.sh': 'add() { echo $(( $1 - $2 )); }\n' });
  const r = await box.sh(
    `mkdir -p ${SANDBOX_STATE_DIR} && cd /workspace && git init -q -b main && git add -A &&
     git -c user.name=t -c user.email=t@t commit -qm one && git rev-parse HEAD`,
  );
  expect(r.exitCode, r.output).toBe(0);
  return r.output.trim().split('\n').at(-1) ?? '';
}

/**
 * Rewrites the file in place with the same size, sets its mtime to the index entry's whole second,
 * then lets that second pass, so a check made now sees nothing but the stat data.
 */
async function sameSizeEditInTheRecordedSecond(): Promise<void> {
  await box.sandbox.writeFile('/workspace/src/add.sh', 'add() { echo $(( $1 + $2 )); }\n');
  const r = await box.sh(
    `cd /workspace && sec=$(git ls-files --debug src/add.sh | sed -n 's/^  mtime: \\([0-9]*\\):.*/\\1/p') &&
     touch -m -d "@$sec" src/add.sh && stat -c %Y src/add.sh && echo "$sec" && sleep 1.1`,
  );
  const [fileSec, entrySec] = r.output.trim().split('\n');
  expect(fileSec).toBe(entrySec);
}

describe('the results diff (docker)', () => {
  it('sees a same-size edit whose whole-second mtime matches the index entry', async () => {
    const base = await commitSample();
    await sameSizeEditInTheRecordedSecond();
    const { diff, files } = await collectChanges(ctx, base);
    expect(diff).toContain('+add() { echo $(( $1 + $2 )); }');
    expect(files.map((f) => f.path)).toEqual(['src/add.sh']);
  });

  it("takes such an edit into a follow-up turn's starting tree", async () => {
    await commitSample();
    const before = await recordTurnStart(ctx);
    await sameSizeEditInTheRecordedSecond();
    const after = await recordTurnStart(ctx);
    expect(after).not.toBe(before);
  });

  it('adds nothing but the change to a sandbox from a committed image (the pack is not copied up)', async () => {
    const base = await commitSample();
    const packed = await box.sh(
      'cd /workspace && head -c 2000000 /dev/urandom | base64 > big.txt && git add -A && ' +
        'git -c user.name=t -c user.email=t@t commit -qm big && git gc -q && git rev-parse HEAD',
    );
    expect(packed.exitCode, packed.output).toBe(0);
    const image = await box.runtime.commit(box.id, {
      repository: 'berth-results-test',
      tag: randomBytes(4).toString('hex'),
      labels: { 'berth.task': 'results-test' },
    });
    const from = await box.runtime.create({
      image: image.id,
      labels: { 'berth.task': 'results-test' },
      resources: { cpus: 1, memoryMb: 256, pids: 256 },
    });
    try {
      await box.runtime.start(from.id);
      await box.runtime.exec(from.id, { script: 'echo changed > /workspace/src/add.sh' });
      const { files } = await collectChanges({ ...ctx, sandboxId: from.id }, base);
      expect(files.map((f) => f.path).sort()).toEqual(['big.txt', 'src/add.sh']);
      const changed = execFileSync('docker', ['diff', from.id], { encoding: 'utf8' });
      expect(changed).not.toMatch(/objects\/pack\/pack-.*\.pack/);
    } finally {
      await box.runtime.remove(from.id);
      await box.runtime.removeImage(image.id);
    }
  });

  it("makes a diff Berth accepts whatever the image's git configuration says about diffs", async () => {
    const base = await commitSample();
    const configured = await box.sh(
      'git config --global diff.mnemonicPrefix true && git config --global diff.noprefix true && ' +
        'git config --global color.diff always && git config --global core.quotePath false && ' +
        "echo changed > /workspace/src/add.sh && printf 'x\\n' > \"/workspace/$(printf 'n\\377')\"",
    );
    expect(configured.exitCode, configured.output).toBe(0);
    try {
      const { diff, files } = await collectChanges(ctx, base);
      expect(diff).not.toContain('\x1b');
      // A name that is not UTF-8 is quoted whatever core.quotePath says (unquoted it is refused).
      expect(diff).toContain('diff --git "a/n\\377" "b/n\\377"\n');
      expect(diff).toContain('diff --git a/src/add.sh b/src/add.sh\n');
      expect(files.map((f) => f.path)).toEqual(['n\ufffd', 'src/add.sh']);
    } finally {
      await box.sh('rm -f ~/.gitconfig "/workspace/$(printf \'n\\377\')"');
    }
  });

  it('refuses, and does not return, a hand-made diff from a git the sandbox replaced', async () => {
    const base = await commitSample();
    // The agent runs as root: it can put its own `git` first on PATH.
    const real = (await box.sh('command -v git')).output.trim();
    const fake = [
      '#!/bin/sh',
      'case " $* " in',
      `  *" --binary "*) printf 'diff --git a/docs/x b/docs/x\\nsimilarity index 100%%\\ncopy from /root/.ssh/id_ed25519\\ncopy to docs/x\\n' ;;`,
      `  *) exec ${real} "$@" ;;`,
      'esac',
      '',
    ].join('\n');
    await box.sandbox.writeFile('/usr/local/bin/git', fake, 0o755);
    expect((await box.sh('command -v git')).output.trim()).toBe('/usr/local/bin/git');
    try {
      const error = await collectChanges(ctx, base).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'task_failed', details: { reason: 'results' } });
      expect((error as Error).message).toContain('refused and not kept');
      expect((error as Error).message).toContain('copy from /root/.ssh/id_ed25519');
    } finally {
      await box.sh('rm -f /usr/local/bin/git');
    }
  });
});
