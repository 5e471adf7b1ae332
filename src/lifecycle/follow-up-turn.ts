import { collectChanges } from './results.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { SandboxResources, SandboxRuntime } from '../ports/sandbox-runtime.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import type { SecretMasker } from '../secrets/secret-masker.js';
import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { SandboxContext } from './sandbox-context.js';
import { SANDBOX_STATE_DIR } from './setup-script.js';
import { STAGE_WORKING_TREE } from './stage-working-tree.js';

/**
 * A follow-up turn (DESIGN §5): the sandbox starts from the picked attempt's snapshot image, the
 * container state it ended in (workspace, installed tools, the exports profile), so there is no
 * checkout, setup or maintenance. The turn's own change is diffed against a tree recorded when
 * the turn starts (a temporary index, never the repository's own), while the attempt's `diff`
 * stays the whole change against the original commit.
 */

export interface FollowUpStart {
  image: string;
  parentAttemptId: string;
}

export interface SnapshotSandboxOptions {
  runtime: SandboxRuntime;
  start: FollowUpStart;
  labels: Record<string, string>;
  resources: SandboxResources;
  workdir: string;
  masker: SecretMasker;
  emit: (event: AttemptEventBody) => void;
  signal: AbortSignal;
  onSandbox: (id: string) => void;
  snapshotTtlMs: number;
}

export async function startFromSnapshot(options: SnapshotSandboxOptions): Promise<SandboxContext> {
  const { runtime, start, signal } = options;
  try {
    await runtime.inspectImage(start.image);
  } catch (error) {
    const e = toBerthError(error);
    if (e.code !== 'not_found' && e.code !== 'image_missing') throw e;
    throw new BerthError(
      'sandbox_gone',
      `the snapshot of attempt ${start.parentAttemptId} (${start.image}) is gone: snapshots are kept for ${Math.round(options.snapshotTtlMs / 3600_000)} h (BERTH_SNAPSHOT_TTL_MS); start a new task instead`,
      { reason: 'snapshot_expired', image: start.image },
    );
  }
  options.emit({
    type: 'log',
    stream: 'system',
    text: `continuing attempt ${start.parentAttemptId} from its snapshot ${start.image}\n`,
  });
  const sandbox = await runtime.create({
    image: start.image,
    labels: { ...options.labels, [BERTH_LABELS.kind]: 'sandbox' },
    resources: options.resources,
    hostname: 'berth',
    workdir: options.workdir,
    signal,
  });
  options.onSandbox(sandbox.id);
  await runtime.start(sandbox.id, signal);
  return {
    runtime,
    sandboxId: sandbox.id,
    workdir: options.workdir,
    emit: options.emit,
    masker: options.masker,
    signal,
  };
}

// $1 state dir. Prints the tree of the working tree as it is (new files in, ignored files out).
const TREE_SCRIPT = String.raw`
set -e
index="$1/turn.index"
${STAGE_WORKING_TREE}
git write-tree
rm -f -- "$index"
`;

/** The tree of the working tree right now (its objects are written to the repository). */
export async function recordTurnStart(ctx: SandboxContext): Promise<string> {
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    argv: ['bash', '-c', TREE_SCRIPT, 'berth-turn', SANDBOX_STATE_DIR],
    workdir: ctx.workdir,
    timeoutMs: 300_000,
    signal: ctx.signal,
  });
  const tree = result.output.trim().split('\n').at(-1) ?? '';
  if (result.exitCode !== 0 || !/^[0-9a-f]{40,64}$/.test(tree)) {
    throw new BerthError(
      'task_failed',
      `could not record the state the follow-up starts from: ${result.output.trim().slice(-300)}`,
      {
        reason: 'results',
      },
    );
  }
  return tree;
}

/** This turn's own change: the working tree against the tree recorded when the turn started. */
export async function turnDiff(ctx: SandboxContext, startTree: string): Promise<string> {
  // The same diff as the results', against the tree the turn started from.
  return (await collectChanges(ctx, startTree)).diff;
}
