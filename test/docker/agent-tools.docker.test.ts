import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AgentEventBody } from '../../src/agent/agent-event.js';
import { applyPatch } from '../../src/agent/patch/apply-patch.js';
import type { ToolContext } from '../../src/agent/tools/agent-tool.js';
import { ToolBox } from '../../src/agent/tools/tool-box.js';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import { startAgentTestSandbox, type AgentTestSandbox } from './agent-support.js';

let box: AgentTestSandbox;
beforeAll(async () => {
  box = await startAgentTestSandbox();
});
afterAll(async () => {
  await box?.remove();
});

const FILES = {
  'src/add.sh': '# add two numbers\nadd() { echo $(( $1 - $2 )); }\n',
  'test.sh': '#!/bin/sh\n. ./src/add.sh\n[ "$(add 2 3)" = 5 ] && echo passed\n',
  'README.md': '# sample\n\nA sample.\n',
  'old.txt': 'old\n',
};
beforeEach(async () => {
  await box.reset(FILES);
});

async function read(path: string): Promise<string> {
  return (await box.sh(`cat /workspace/${path}`)).output;
}

async function snapshot(): Promise<string> {
  return (
    await box.sh(
      'cd /workspace && find . -type f -o -type l | sort | while read f; do echo "== $f $(stat -c %a "$f")"; cat "$f"; done',
    )
  ).output;
}

function context(
  signal = new AbortController().signal,
): ToolContext & { events: (AttemptEventBody | AgentEventBody)[]; paths: string[] } {
  const events: (AttemptEventBody | AgentEventBody)[] = [];
  const paths: string[] = [];
  return {
    sandbox: box.sandbox,
    signal,
    emit: (e) => events.push(e),
    mask: (t) => t,
    touched: (p) => paths.push(...p),
    remainingMs: () => 600_000,
    events,
    paths,
  };
}

describe('apply_patch in a real sandbox', () => {
  it('adds, updates (keeping the mode), moves and deletes in one patch', async () => {
    const changes = await applyPatch(
      box.sandbox,
      [
        '*** Begin Patch',
        '*** Update File: src/add.sh',
        '@@',
        ' # add two numbers',
        '-add() { echo $(( $1 - $2 )); }',
        '+add() { echo $(( $1 + $2 )); }',
        '*** Update File: test.sh',
        '@@',
        '-[ "$(add 2 3)" = 5 ] && echo passed',
        '+[ "$(add 2 3)" = 5 ] && echo "all tests passed"',
        '*** Add File: docs/new/guide.md',
        '+# Guide',
        '*** Update File: README.md',
        '*** Move to: docs/README.md',
        '@@',
        '-A sample.',
        '+A moved sample.',
        '*** Delete File: old.txt',
        '*** End Patch',
      ].join('\n'),
    );
    expect(changes).toEqual([
      { kind: 'update', path: 'src/add.sh' },
      { kind: 'update', path: 'test.sh' },
      { kind: 'add', path: 'docs/new/guide.md' },
      { kind: 'move', path: 'README.md', to: 'docs/README.md' },
      { kind: 'delete', path: 'old.txt' },
    ]);
    expect(await read('src/add.sh')).toBe('# add two numbers\nadd() { echo $(( $1 + $2 )); }\n');
    expect((await box.sh('cd /workspace && ./test.sh && stat -c %a test.sh')).output).toBe(
      'all tests passed\n755\n',
    );
    expect(await read('docs/new/guide.md')).toBe('# Guide\n');
    expect(await read('docs/README.md')).toBe('# sample\n\nA moved sample.\n');
    expect((await box.sh('ls /workspace')).output.split('\n')).not.toContain('old.txt');
    expect((await box.sh('ls /workspace')).output.split('\n')).not.toContain('README.md');
  });

  it('applies a unified diff', async () => {
    await applyPatch(
      box.sandbox,
      [
        '--- a/src/add.sh',
        '+++ b/src/add.sh',
        '@@ -1,2 +1,2 @@',
        ' # add two numbers',
        '-add() { echo $(( $1 - $2 )); }',
        '+add() { echo $(( $1 + $2 )); }',
        '',
      ].join('\n'),
    );
    expect((await box.sh('cd /workspace && sh test.sh')).output).toBe('passed\n');
  });

  it('changes nothing when one hunk of several does not apply', async () => {
    const before = await snapshot();
    const error = await applyPatch(
      box.sandbox,
      [
        '*** Begin Patch',
        '*** Update File: src/add.sh',
        '-add() { echo $(( $1 - $2 )); }',
        '+add() { echo $(( $1 + $2 )); }',
        '*** Add File: new.txt',
        '+new',
        '*** Update File: README.md',
        '@@',
        '-This line is not there.',
        '+Whatever.',
        '*** End Patch',
      ].join('\n'),
    ).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'invalid_input', details: { file: 'README.md', hunk: 1 } });
    expect((error as Error).message).toMatch(/^README\.md: hunk 1 does not apply/);
    expect(await snapshot()).toBe(before);
  });

  it('refuses to update or delete a missing file and to add an existing one, changing nothing', async () => {
    const before = await snapshot();
    await expect(
      applyPatch(box.sandbox, '*** Begin Patch\n*** Update File: nope.txt\n-a\n+b\n*** End Patch'),
    ).rejects.toThrow(/nope\.txt: cannot update it, the file does not exist/);
    await expect(
      applyPatch(
        box.sandbox,
        '*** Begin Patch\n*** Add File: x.txt\n+x\n*** Delete File: nope.txt\n*** End Patch',
      ),
    ).rejects.toThrow(/nope\.txt: cannot delete it, the file does not exist/);
    await expect(
      applyPatch(
        box.sandbox,
        '*** Begin Patch\n*** Add File: x.txt\n+x\n*** Add File: README.md\n+again\n*** End Patch',
      ),
    ).rejects.toThrow(/README\.md: cannot add it, the file already exists/);
    await expect(
      applyPatch(
        box.sandbox,
        '*** Begin Patch\n*** Update File: README.md\n*** Move to: test.sh\n@@\n-A sample.\n+B\n*** End Patch',
      ),
    ).rejects.toThrow(/cannot move it to test\.sh, that file already exists/);
    await expect(
      applyPatch(box.sandbox, '*** Begin Patch\n*** Update File: src\n-a\n+b\n*** End Patch'),
    ).rejects.toThrow(/src is not a regular file/);
    expect(await snapshot()).toBe(before);
  });

  it('confines paths: no absolute path outside, no .. escape, no symlink escape', async () => {
    await box.sh(
      'ln -s /outside /workspace/link && ln -s /outside/secret.txt /workspace/secret-link && ln -s src /workspace/inner',
    );
    const before = await snapshot();
    const attempts = [
      '*** Begin Patch\n*** Update File: /outside/secret.txt\n-outside\n+owned\n*** End Patch',
      '*** Begin Patch\n*** Update File: ../outside/secret.txt\n-outside\n+owned\n*** End Patch',
      '*** Begin Patch\n*** Add File: src/../../outside/new.txt\n+owned\n*** End Patch',
      '*** Begin Patch\n*** Update File: link/secret.txt\n-outside\n+owned\n*** End Patch',
      '*** Begin Patch\n*** Update File: secret-link\n-outside\n+owned\n*** End Patch',
      '*** Begin Patch\n*** Add File: link/new.txt\n+owned\n*** End Patch',
      '*** Begin Patch\n*** Update File: README.md\n*** Move to: link/README.md\n@@\n-A sample.\n+x\n*** End Patch',
    ];
    for (const patch of attempts) {
      await expect(applyPatch(box.sandbox, patch), patch).rejects.toMatchObject({
        code: 'invalid_input',
        message: expect.stringMatching(/outside the workspace/) as string,
      });
    }
    expect(await snapshot()).toBe(before);
    expect((await box.sh('cat /outside/secret.txt; ls /outside')).output).toBe(
      'outside\nsecret.txt\n',
    );
    // A symlink that stays inside is fine, and an absolute path inside the workspace too.
    await applyPatch(
      box.sandbox,
      '*** Begin Patch\n*** Update File: inner/add.sh\n-add() { echo $(( $1 - $2 )); }\n+add() { echo $(( $1 + $2 )); }\n*** End Patch',
    );
    await applyPatch(
      box.sandbox,
      '*** Begin Patch\n*** Add File: /workspace/abs.txt\n+abs\n*** End Patch',
    );
    expect((await box.sh('cd /workspace && sh test.sh && cat abs.txt')).output).toBe(
      'passed\nabs\n',
    );
  });

  it('answers the model with what was refused, through the tool box', async () => {
    const ctx = context();
    const outcome = await new ToolBox().run(
      {
        id: 'c1',
        name: 'apply_patch',
        arguments: JSON.stringify({
          input: '*** Begin Patch\n*** Update File: README.md\n-nope\n+x\n*** End Patch',
        }),
      },
      ctx,
    );
    expect(outcome.ok).toBe(false);
    expect(outcome.output).toMatch(
      /^The patch was not applied \(nothing changed\): README\.md: hunk 1 does not apply/,
    );
  });
});

describe('shell in a real sandbox', () => {
  it('runs an argv in the workspace with the agent environment and reports the exit code', async () => {
    const ctx = context();
    const outcome = await new ToolBox().run(
      {
        id: 'c1',
        name: 'shell',
        arguments: JSON.stringify({
          command: ['bash', '-lc', 'pwd; echo "$BERTH_AGENT_TEST"; sh test.sh; exit 3'],
        }),
      },
      ctx,
    );
    expect(outcome).toMatchObject({ ok: false, exitCode: 3, timedOut: false });
    expect(outcome.output).toMatch(
      /^Exit code: 3\nWall time: [0-9.]+ s\nOutput:\n\/workspace\n1\n$/,
    );
    expect(outcome.command?.command).toBe(
      'bash -lc \'pwd; echo "$BERTH_AGENT_TEST"; sh test.sh; exit 3\'',
    );
  });

  it('runs in a workdir and notes the paths it touched', async () => {
    const ctx = context();
    const outcome = await new ToolBox().run(
      {
        id: 'c1',
        name: 'shell',
        arguments: JSON.stringify({ command: ['bash', '-c', 'pwd; cat add.sh'], workdir: 'src' }),
      },
      ctx,
    );
    expect(outcome.output).toContain('/workspace/src\n# add two numbers');
    expect(ctx.paths).toContain('src');
  });

  it('cuts long output to its head and tail with a marker', async () => {
    const outcome = await new ToolBox().run(
      {
        id: 'c1',
        name: 'shell',
        arguments: JSON.stringify({ command: ['bash', '-c', 'seq 1 200000'] }),
      },
      context(),
    );
    expect(outcome.output).toMatch(/Output:\n1\n2\n3\n/);
    expect(outcome.output).toMatch(/\n200000\n$/);
    const left = /\[\.\.\. (\d+) bytes left out \.\.\.\]/.exec(outcome.output);
    expect(Number(left?.[1])).toBeGreaterThan(1_000_000);
    expect(outcome.output.length).toBeLessThan(20_000);
  });

  it('stops a command at its timeout and says so', async () => {
    const started = Date.now();
    const outcome = await new ToolBox().run(
      {
        id: 'c1',
        name: 'shell',
        arguments: JSON.stringify({
          command: ['bash', '-c', 'echo begun; sleep 600'],
          timeout_ms: 1500,
        }),
      },
      context(),
    );
    expect(outcome).toMatchObject({ ok: false, timedOut: true });
    expect(outcome.output).toMatch(
      /^The command was stopped after its timeout of 1500 ms; it had not finished\./,
    );
    expect(outcome.output).toContain('begun');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(
      (await box.sh('for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done'))
        .output,
    ).not.toContain('sleep 600');
  });

  it('stops the command when cancelled', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1000);
    const pending = new ToolBox().run(
      {
        id: 'c1',
        name: 'shell',
        arguments: JSON.stringify({ command: ['bash', '-c', 'sleep 777'] }),
      },
      context(controller.signal),
    );
    await expect(pending).rejects.toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(
      (await box.sh('for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done'))
        .output,
    ).not.toContain('sleep 777');
  });
});
