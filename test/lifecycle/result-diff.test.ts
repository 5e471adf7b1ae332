import { describe, expect, it } from 'vitest';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { checkResultDiff } from '../../src/lifecycle/result-diff.js';
import type { SandboxContext } from '../../src/lifecycle/sandbox-context.js';
import { SecretMasker } from '../../src/secrets/secret-masker.js';

/**
 * The check a diff passes when it comes out of the sandbox (issue 21, 1 and 2): a diff not shaped
 * like Berth's fails the attempt and is not kept; a secret value of the environment is masked and
 * the file holding it named. (The whole path, setup writing `.npmrc` into the repository on a
 * real engine, cached and uncached, is in test/docker/lifecycle-services-scan.docker.test.ts.)
 */

const TOKEN = 'npm_4f9c1e7a2b5d8e0f3a6c';

/** The two parts of a sandbox context the check uses: the attempt's masker and its log. */
function context(secrets: string[] = [TOKEN]): { ctx: SandboxContext; events: AttemptEventBody[] } {
  const events: AttemptEventBody[] = [];
  const ctx = {
    masker: new SecretMasker(secrets),
    emit: (event: AttemptEventBody) => events.push(event),
  } as unknown as SandboxContext;
  return { ctx, events };
}

const npmrc = (line: string) =>
  `diff --git a/.npmrc b/.npmrc\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/.npmrc\n@@ -0,0 +1 @@\n+${line}\n`;
const readme =
  'diff --git a/README.md b/README.md\nindex 2222222..3333333 100644\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-old\n+new\n';

describe('checkResultDiff', () => {
  it('masks a secret value in the diff and names the file that held it', async () => {
    const { ctx, events } = context();
    const diff = readme + npmrc(`//registry.example/:_authToken=${TOKEN}`);
    const checked = await checkResultDiff(ctx, diff);
    expect(checked.secretFiles).toEqual(['.npmrc']);
    expect(checked.diff).not.toContain(TOKEN);
    expect(checked.diff).toContain('+//registry.example/:_authToken=***');
    expect(checked.diff.startsWith(readme)).toBe(true);
    const warning = events.find((e) => e.type === 'warning');
    expect(JSON.stringify(warning)).toContain('a secret value of the environment in .npmrc');
    expect(JSON.stringify(events)).not.toContain(TOKEN);
  });

  it('finds an encoded form too (base64, as in an auth header), and masks a file name', async () => {
    const { ctx } = context();
    const encoded = Buffer.from(`bot:${TOKEN}`).toString('base64');
    expect((await checkResultDiff(ctx, npmrc(`_auth=${encoded}`))).secretFiles).toEqual(['.npmrc']);
    const named = `diff --git a/keys/${TOKEN} b/keys/${TOKEN}\nnew file mode 100644\nindex 0000000..e69de29\n`;
    expect((await checkResultDiff(ctx, named)).secretFiles).toEqual(['keys/***']);
  });

  it('leaves a diff without secret values as it is', async () => {
    const { ctx, events } = context();
    expect(await checkResultDiff(ctx, readme)).toEqual({
      diff: readme,
      secretFiles: [],
      files: [{ path: 'README.md', added: null, removed: null, binary: false }],
    });
    expect((await checkResultDiff(context([]).ctx, npmrc(TOKEN))).secretFiles).toEqual([]);
    expect(events).toEqual([]);
  });

  it('fails the attempt on a diff not shaped like Berth’s, saying what was refused', async () => {
    const { ctx } = context();
    const copy = `${readme}diff --git a/docs/x b/docs/x\nsimilarity index 100%\ncopy from /root/.ssh/id_ed25519\ncopy to docs/x\n`;
    const error = await checkResultDiff(ctx, copy).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BerthError);
    expect((error as BerthError).code).toBe('task_failed');
    expect((error as BerthError).details.reason).toBe('results');
    expect((error as BerthError).message).toContain('refused and not kept');
    expect((error as BerthError).message).toContain('copy from /root/.ssh/id_ed25519');
  });

  it("lists exactly the diff's files, whatever the sandbox's numstat says", async () => {
    const { ctx } = context();
    const diff = readme + npmrc('registry=https://registry.example/');
    const { files } = await checkResultDiff(ctx, diff, [
      { path: 'README.md', added: 1, removed: 1, binary: false },
      { path: 'decoy.txt', added: 3, removed: 0, binary: false },
    ]);
    expect(files).toEqual([
      { path: 'README.md', added: 1, removed: 1, binary: false },
      { path: '.npmrc', added: null, removed: null, binary: false },
    ]);
  });
});
