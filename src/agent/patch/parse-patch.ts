import { BerthError } from '../../errors/berth-error.js';
import { parseBeginPatch } from './parse-begin-patch.js';
import { parseUnifiedDiff } from './parse-unified-diff.js';
import type { PatchOperation } from './patch-operation.js';

/**
 * Parses an `apply_patch` input: the `*** Begin Patch` format coding models are trained on, or a
 * unified diff (`--- a/x` / `+++ b/x` / `@@ -l,n +l,n @@`). Text around the patch (a code fence,
 * a heredoc line) is tolerated. Throws a BerthError `invalid_input` naming the line at fault.
 */
export function parsePatch(input: string): PatchOperation[] {
  const lines = input.replace(/\r\n/g, '\n').split('\n');
  const begin = lines.findIndex((line) => line.trim() === '*** Begin Patch');
  if (begin !== -1) return parseBeginPatch(lines, begin);
  if (
    lines.some((line) => line.startsWith('--- ')) &&
    lines.some((line) => line.startsWith('+++ '))
  ) {
    return parseUnifiedDiff(lines);
  }
  throw new BerthError(
    'invalid_input',
    'the input is not a patch: it must start with "*** Begin Patch" (or be a unified diff with ---/+++ headers)',
  );
}
