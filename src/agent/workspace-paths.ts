import { posix } from 'node:path';
import { BerthError } from '../errors/berth-error.js';
import type { AgentSandbox } from './agent-sandbox.js';

/**
 * Confines the paths the model names to the workspace (the repository's root in the sandbox).
 *
 * Threat model: the model's arguments are untrusted (a prompt injection in a repository file can
 * steer it). The tools that write files must not write outside the workspace: not through an
 * absolute path, not through `..`, not through a symlink inside the workspace that points out of
 * it. Paths are checked twice: lexically here, then resolved inside the sandbox (`realpath -m`,
 * symlinks followed) and checked again against the resolved root. Only the resolved path is then
 * read or written. This keeps edits where the diff is taken from; it is not the sandbox's
 * security boundary (the container is), since `shell` can run anything the sandbox allows.
 */

export type PathKind = 'file' | 'dir' | 'other' | 'none';

export interface ResolvedPath {
  /** As the model wrote it. */
  given: string;
  /** Relative to the workspace root, normalised (for messages and AGENTS.md lookups). */
  relative: string;
  /** Absolute, symlinks resolved, inside the resolved root. */
  real: string;
  kind: PathKind;
  /** Permission bits of an existing file. */
  mode?: number;
}

/** The absolute, normalised path of `given` inside `root`, or a BerthError `invalid_input`. */
export function confinePath(root: string, given: string): string {
  if (given.trim() === '') throw new BerthError('invalid_input', 'a path is empty');
  if (/[\u0000-\u001f]/.test(given))
    throw new BerthError(
      'invalid_input',
      `the path ${JSON.stringify(given)} contains control characters`,
    );
  const absolute = posix.isAbsolute(given)
    ? posix.normalize(given)
    : posix.normalize(posix.join(root, given));
  if (!isInside(root, absolute)) {
    throw new BerthError('invalid_input', `the path ${given} is outside the workspace ${root}`, {
      path: given,
    });
  }
  return absolute;
}

export function isInside(root: string, path: string): boolean {
  const base = root.endsWith('/') ? root : `${root}/`;
  return path === root || path.startsWith(base);
}

const RESOLVE_SCRIPT = [
  'for p in "$@"; do',
  '  r=$(realpath -m -- "$p") || r=""',
  '  if [ -z "$r" ]; then k=none; elif [ -d "$r" ]; then k=dir; elif [ -f "$r" ]; then k=file; elif [ -e "$r" ] || [ -L "$r" ]; then k=other; else k=none; fi',
  '  m=$(stat -c %a -- "$r" 2>/dev/null) || m=-',
  '  printf "%s\\t%s\\t%s\\n" "$r" "$k" "$m"',
  'done',
].join('\n');

/**
 * Confines and resolves paths in one round trip to the sandbox. Throws a BerthError
 * `invalid_input` for a path outside the workspace, lexically or through a symlink.
 */
export async function resolveWorkspacePaths(
  sandbox: AgentSandbox,
  given: string[],
  signal?: AbortSignal,
): Promise<ResolvedPath[]> {
  const root = posix.normalize(sandbox.workdir);
  const lexical = given.map((p) => confinePath(root, p));
  const result = await sandbox.exec(
    ['bash', '-c', RESOLVE_SCRIPT, 'berth-resolve', root, ...lexical],
    {
      workdir: '/',
      timeoutMs: 30_000,
      ...(signal ? { signal } : {}),
    },
  );
  const rows = result.output.split('\n').filter((line) => line !== '');
  if (result.exitCode !== 0 || rows.length !== lexical.length + 1) {
    throw new BerthError(
      'internal',
      `could not resolve paths in the sandbox: ${result.output.slice(0, 300)}`,
    );
  }
  const [realRoot] = (rows[0] ?? '').split('\t');
  return given.map((path, index) => {
    const [real = '', kind = 'none', mode = '-'] = (rows[index + 1] ?? '').split('\t');
    if (!realRoot || !isInside(realRoot, real)) {
      throw new BerthError(
        'invalid_input',
        `the path ${path} leads outside the workspace (through a symbolic link)`,
        { path },
      );
    }
    return {
      given: path,
      relative: posix.relative(realRoot, real) || '.',
      real,
      kind: kind as PathKind,
      ...(mode !== '-' ? { mode: parseInt(mode, 8) } : {}),
    };
  });
}
