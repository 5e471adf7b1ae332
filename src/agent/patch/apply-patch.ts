import { BerthError } from '../../errors/berth-error.js';
import type { AgentSandbox } from '../agent-sandbox.js';
import { resolveWorkspacePaths, type ResolvedPath } from '../workspace-paths.js';
import { applyHunks } from './apply-hunks.js';
import { parsePatch } from './parse-patch.js';

export interface FileChange {
  kind: 'add' | 'update' | 'delete' | 'move';
  /** Relative to the workspace root. */
  path: string;
  /** For a move: where to. */
  to?: string;
}

/**
 * Applies a patch (see parse-patch.ts) to the files of the sandbox's workspace, all or nothing:
 * every path is confined (workspace-paths.ts), every new file content is computed from what
 * readFile returns, and only when all of them are known is anything written. A patch that does
 * not apply throws a BerthError `invalid_input` naming the file and the hunk, with nothing
 * changed. Should a write itself fail midway, the files already written are put back.
 */
export async function applyPatch(
  sandbox: AgentSandbox,
  input: string,
  signal?: AbortSignal,
): Promise<FileChange[]> {
  const operations = parsePatch(input);
  const given = operations.flatMap((op) =>
    op.kind === 'update' && op.moveTo !== undefined ? [op.path, op.moveTo] : [op.path],
  );
  const resolved = new Map<string, ResolvedPath>();
  for (const path of await resolveWorkspacePaths(sandbox, given, signal))
    resolved.set(path.given, path);
  const at = (path: string): ResolvedPath => {
    const found = resolved.get(path);
    if (!found) throw new BerthError('internal', `path ${path} was not resolved`);
    return found;
  };

  // The planned state of every file the patch touches: text, or null for "gone".
  const planned = new Map<string, { text: string | null; mode: number; relative: string }>();
  const original = new Map<string, string | null>();
  const current = async (file: ResolvedPath): Promise<string | null> => {
    const plannedFile = planned.get(file.real);
    if (plannedFile) return plannedFile.text;
    if (!original.has(file.real)) {
      if (file.kind === 'none') original.set(file.real, null);
      else if (file.kind !== 'file')
        throw new BerthError('invalid_input', `${file.relative} is not a regular file`, {
          file: file.relative,
        });
      else original.set(file.real, await readForPatch(sandbox, file));
    }
    return original.get(file.real) ?? null;
  };
  const plan = (file: ResolvedPath, text: string | null, mode?: number): void => {
    planned.set(file.real, {
      text,
      mode: mode ?? planned.get(file.real)?.mode ?? file.mode ?? 0o644,
      relative: file.relative,
    });
  };

  const changes: FileChange[] = [];
  for (const op of operations) {
    const file = at(op.path);
    const text = await current(file);
    if (op.kind === 'add') {
      if (text !== null)
        throw new BerthError(
          'invalid_input',
          `${file.relative}: cannot add it, the file already exists (update it instead)`,
          { file: file.relative },
        );
      plan(file, op.content, 0o644);
      changes.push({ kind: 'add', path: file.relative });
    } else if (op.kind === 'delete') {
      if (text === null)
        throw new BerthError(
          'invalid_input',
          `${file.relative}: cannot delete it, the file does not exist`,
          { file: file.relative },
        );
      plan(file, null);
      changes.push({ kind: 'delete', path: file.relative });
    } else {
      if (text === null)
        throw new BerthError(
          'invalid_input',
          `${file.relative}: cannot update it, the file does not exist (add it instead)`,
          { file: file.relative },
        );
      const updated = applyHunks(text, op.hunks, file.relative);
      if (op.moveTo !== undefined) {
        const target = at(op.moveTo);
        if (target.real !== file.real) {
          if ((await current(target)) !== null) {
            throw new BerthError(
              'invalid_input',
              `${file.relative}: cannot move it to ${target.relative}, that file already exists`,
              { file: file.relative },
            );
          }
          const mode = planned.get(file.real)?.mode ?? file.mode ?? 0o644;
          plan(file, null);
          plan(target, updated, mode);
          changes.push({ kind: 'move', path: file.relative, to: target.relative });
          continue;
        }
      }
      plan(file, updated);
      changes.push({ kind: 'update', path: file.relative });
    }
  }

  const done: string[] = [];
  try {
    for (const [real, file] of planned) {
      if (signal?.aborted) throw signal.reason;
      if (file.text !== null) await sandbox.writeFile(real, file.text, file.mode);
      else if ((original.get(real) ?? null) !== null) await sandbox.deleteFile(real);
      done.push(real);
    }
  } catch (error) {
    await restore(sandbox, done, original, planned);
    throw error;
  }
  return changes;
}

/** The largest file `apply_patch` reads to patch; a larger one is refused before it is read. */
export const APPLY_PATCH_MAX_FILE_BYTES = 8 * 1024 * 1024;

async function readForPatch(sandbox: AgentSandbox, file: ResolvedPath): Promise<string> {
  try {
    return (await sandbox.readFile(file.real, { maxBytes: APPLY_PATCH_MAX_FILE_BYTES })).toString(
      'utf8',
    );
  } catch (error) {
    if (error instanceof BerthError && error.code === 'payload_too_large') {
      const size =
        typeof error.details.size === 'number' ? `${error.details.size} bytes` : 'too large';
      throw new BerthError(
        'invalid_input',
        `${file.relative} is ${size}, above the ${APPLY_PATCH_MAX_FILE_BYTES} bytes apply_patch reads; edit it with a shell command instead`,
        { file: file.relative },
      );
    }
    throw error;
  }
}

async function restore(
  sandbox: AgentSandbox,
  done: string[],
  original: Map<string, string | null>,
  planned: Map<string, { mode: number }>,
): Promise<void> {
  for (const real of done.reverse()) {
    const text = original.get(real) ?? null;
    try {
      if (text === null) await sandbox.deleteFile(real);
      else await sandbox.writeFile(real, text, planned.get(real)?.mode ?? 0o644);
    } catch {
      // Best effort: the error that started the rollback is the one reported.
    }
  }
}

/** "M src/a.ts, A b.ts, D c.ts, R d.ts -> e.ts" */
export function describeChanges(changes: FileChange[]): string {
  const letter = { add: 'A', update: 'M', delete: 'D', move: 'R' } as const;
  return changes
    .map((c) => `${letter[c.kind]} ${c.path}${c.to !== undefined ? ` -> ${c.to}` : ''}`)
    .join('\n');
}
