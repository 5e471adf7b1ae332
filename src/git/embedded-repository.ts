/**
 * Whether a diff's paths make a directory of the tree look like a git repository.
 *
 * Threat model: a diff from a sandbox cannot name `.git` (diff-headers.ts), but git does not need
 * a `.git`: run in (or below) any directory that passes its own test for a bare repository
 * (setup.c `is_git_directory`: a `HEAD`, an `objects/` and a `refs/` directory, or a `commondir`
 * file standing in for the last two), git reads that directory's `config`, whose
 * `core.fsmonitor`, `core.worktree`, `core.hooksPath` or aliases run programs. A diff that
 * writes `test/fixtures/repo/{HEAD,config,objects/…,refs/…}` plants one; the person's shell
 * prompt, editor or a `git status` there runs it. So a diff is refused when, with its paths (and,
 * where a tree is at hand, the files already there), a directory it writes into has a `HEAD` and
 * either `objects/` and `refs/` or `commondir`. Names in the diff are compared case-insensitively
 * (a case-insensitive file system reads `head` as `HEAD`); names in the tree as git looks them
 * up. A repository that already holds such a fixture directory cannot take a diff that changes
 * files in it (the refusal says so). What this does not cover: `.gitmodules` (a submodule's URL is
 * fetched only by `git submodule update`, which the person runs knowingly; see docs/results.md).
 */

/** The names that make a git directory, as the diff's paths are compared (folded). */
const MARKERS = new Set(['head', 'config', 'commondir', 'gitdir']);
const TREES = new Set(['objects', 'refs']);

/** A name as a case-insensitive, normalising file system compares it. */
export function foldName(name: string): string {
  return name
    .replace(/[\u200b-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g, '')
    .normalize('NFC')
    .toLowerCase();
}

/**
 * The first directory the paths make look like a git repository, or undefined. `exists` tells
 * whether a path (relative to the top of the tree, `/`-separated) is already in the tree.
 */
export function plantedRepository(
  paths: readonly string[],
  exists: (path: string) => boolean = () => false,
): string | undefined {
  const folded = paths.map((p) => p.split('/').map(foldName));
  const candidates = new Map<string, string>();
  paths.forEach((path, n) => {
    const segments = path.split('/');
    const names = folded[n] ?? [];
    const last = names.length - 1;
    if (MARKERS.has(names[last] ?? '') || TREES.has(names[last] ?? ''))
      candidates.set(names.slice(0, last).join('/'), segments.slice(0, last).join('/'));
    for (let k = 0; k < last; k++) {
      if (TREES.has(names[k] ?? ''))
        candidates.set(names.slice(0, k).join('/'), segments.slice(0, k).join('/'));
    }
  });
  const inDiff = new Set(folded.map((names) => names.join('/')));
  const prefixes = new Set<string>();
  for (const names of folded)
    for (let k = 1; k < names.length; k++) prefixes.add(names.slice(0, k).join('/'));
  for (const [key, dir] of candidates) {
    const at = (name: string) => (key === '' ? name : `${key}/${name}`);
    const onDisk = (name: string) => exists(dir === '' ? name : `${dir}/${name}`);
    const head = inDiff.has(at('head')) || onDisk('HEAD');
    // git tests objects/ and refs/ with access(X_OK): an executable file passes too.
    const objects = prefixes.has(at('objects')) || inDiff.has(at('objects')) || onDisk('objects');
    const refs = prefixes.has(at('refs')) || inDiff.has(at('refs')) || onDisk('refs');
    const common = inDiff.has(at('commondir')) || onDisk('commondir');
    if (head && ((objects && refs) || common)) return dir === '' ? '.' : dir;
  }
  return undefined;
}
