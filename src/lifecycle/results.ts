import type { ChangedFile } from '../domain/task/attempt.js';
import { BerthError } from '../errors/berth-error.js';
import { checkResultDiff } from './result-diff.js';
import { readSandboxFile } from './sandbox-files.js';
import type { SandboxContext } from './sandbox-context.js';
import { SANDBOX_STATE_DIR } from './setup-script.js';
import { STAGE_WORKING_TREE } from './stage-working-tree.js';

/**
 * The attempt's changes: every file in the working tree (new files included, ignored files not)
 * is added to a temporary index, never the repository's own, and diffed against the commit the
 * attempt started from, with binary patches. The agent's own commits are part of the diff too.
 * The options that shape the patch are given explicitly (prefixes, no colour, no textconv, no
 * renames, names with bytes outside ASCII quoted), so a user's git configuration in the image
 * (`diff.mnemonicPrefix`, `color.diff`, `core.quotePath=false`) cannot make a diff that
 * result-diff.ts refuses (an unquoted name that is not UTF-8) or `git apply` cannot read.
 */

const DIFF_FILE = `${SANDBOX_STATE_DIR}/result.diff`;
const NUMSTAT_FILE = `${SANDBOX_STATE_DIR}/result.numstat`;
/** A diff above this is not read: the attempt fails (the snapshot image still holds everything). */
export const MAX_DIFF_BYTES = 20 * 1024 * 1024;

// $1 base commit, $2 state dir.
const DIFF_SCRIPT = String.raw`
set -e
mkdir -p -- "$2"
index="$2/result.index"
${STAGE_WORKING_TREE}
git -c core.quotePath=true diff --cached --binary --no-renames --no-ext-diff --no-textconv \
  --no-color --no-relative --src-prefix=a/ --dst-prefix=b/ "$1" -- > "$2/result.diff"
git diff --cached --numstat --no-renames -z "$1" -- > "$2/result.numstat"
rm -f -- "$index"
`;

export function parseNumstat(text: string): ChangedFile[] {
  const out: ChangedFile[] = [];
  for (const record of text.split('\0')) {
    const match = /^(-|\d+)\t(-|\d+)\t([\s\S]+)$/.exec(record);
    if (!match) continue;
    const [, added = '-', removed = '-', path = ''] = match;
    const binary = added === '-' && removed === '-';
    out.push({
      path,
      added: binary ? null : Number(added),
      removed: binary ? null : Number(removed),
      binary,
    });
  }
  return out;
}

export async function collectChanges(
  ctx: SandboxContext,
  baseCommit: string,
): Promise<{ diff: string; files: ChangedFile[]; secretFiles: string[] }> {
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    argv: ['bash', '-c', DIFF_SCRIPT, 'berth-results', baseCommit, SANDBOX_STATE_DIR],
    workdir: ctx.workdir,
    timeoutMs: 300_000,
    signal: ctx.signal,
  });
  if (result.exitCode !== 0) {
    throw new BerthError(
      'task_failed',
      `could not compute the diff: ${result.output.trim().split('\n').slice(-5).join('\n')}`,
      {
        reason: 'results',
      },
    );
  }
  // Both are read with MAX_DIFF_BYTES as the cap (a numstat is smaller than its diff): a diff
  // above it, a symlink, a device or a FIFO in their place fails the attempt (sandbox-files.ts).
  const [diff = Buffer.alloc(0), numstat = Buffer.alloc(0)] = await Promise.all([
    readSandboxFile(ctx.runtime, ctx.sandboxId, DIFF_FILE, ctx.signal, MAX_DIFF_BYTES),
    readSandboxFile(ctx.runtime, ctx.sandboxId, NUMSTAT_FILE, ctx.signal, MAX_DIFF_BYTES),
  ]);
  const text = diff.toString('utf8');
  // Refused when not shaped like Berth's diffs; secret values masked and their files named; the
  // files listed are the diff's own.
  return checkResultDiff(ctx, text, parseNumstat(numstat.toString('utf8')));
}
