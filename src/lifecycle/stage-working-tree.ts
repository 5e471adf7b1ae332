/**
 * A bash fragment that stages the working tree as it is (new files in, ignored files out) into a
 * temporary index `$index`, never the repository's own, and exports GIT_INDEX_FILE for what
 * follows. Used by the results' diff and by a follow-up turn's starting tree.
 *
 * Correctness first: git's default stat checks (ctime and nanosecond mtimes included) decide which
 * files may have changed; any file written since the index recorded it has a new ctime, so no
 * edit is missed. (Comparing whole-second mtimes and sizes only missed an `apply_patch` edit that
 * kept a file's size within the second of the checkout: tar archives carry whole-second mtimes.)
 *
 * Disk second: in a sandbox from a committed image (cache entry, snapshot) every file has a new
 * inode and a whole-second mtime, so every entry looks changed. `git add -A` would hash each file
 * again and, finding the object already packed, "freshen" the pack (set its mtime), which makes
 * overlayfs copy the whole pack into the sandbox's layer and its snapshot. `update-index
 * --refresh` first compares those files' contents without writing any object and records their
 * new stat data, so `add -A` then writes only what really changed.
 */
export const STAGE_WORKING_TREE = String.raw`
rm -f -- "$index"
gitdir=$(git rev-parse --git-dir)
if [ -f "$gitdir/index" ]; then cp -p -- "$gitdir/index" "$index"; fi
export GIT_INDEX_FILE="$index"
git update-index -q --refresh >/dev/null || true
git add -A
`;
