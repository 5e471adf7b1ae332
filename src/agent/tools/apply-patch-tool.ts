import { z } from 'zod';
import { BerthError } from '../../errors/berth-error.js';
import { applyPatch, describeChanges } from '../patch/apply-patch.js';
import type { AgentTool } from './agent-tool.js';

const applyPatchArgs = z.strictObject({
  input: z
    .string()
    .min(1)
    .describe('The whole patch, from "*** Begin Patch" to "*** End Patch" (or a unified diff).'),
});

export type ApplyPatchArgs = z.infer<typeof applyPatchArgs>;

export const APPLY_PATCH_DESCRIPTION = `Edit files: add, delete, update or move files with a patch. All changes apply, or none.
Format:
*** Begin Patch
*** Add File: path/new.txt
+every line of the new file starts with +
*** Delete File: path/old.txt
*** Update File: path/file.py
*** Move to: path/renamed.py   (optional)
@@ def some_function():          (optional: a line just above the change, to find the place)
 context line (starts with a space; give about 3 lines before and after)
-removed line
+added line
*** End Patch
Paths are relative to the repository root. Unified diffs (--- a/x, +++ b/x, @@ -l,n +l,n @@) are accepted too.`;

/**
 * `apply_patch`: applies a patch to the workspace all or nothing (patch/apply-patch.ts). A patch
 * that does not apply is refused with the file and the hunk, and the model is told why.
 */
export const applyPatchTool: AgentTool<ApplyPatchArgs> = {
  name: 'apply_patch',
  description: APPLY_PATCH_DESCRIPTION,
  schema: applyPatchArgs,
  async run(args, context) {
    try {
      const changes = await applyPatch(context.sandbox, args.input, context.signal);
      context.touched(changes.flatMap((c) => (c.to !== undefined ? [c.path, c.to] : [c.path])));
      return { output: `Applied. Changed files:\n${describeChanges(changes)}`, ok: true };
    } catch (error) {
      if (context.signal.aborted) throw context.signal.reason;
      if (error instanceof BerthError && error.code === 'invalid_input') {
        return {
          output: `The patch was not applied (nothing changed): ${error.message}`,
          ok: false,
        };
      }
      throw error;
    }
  },
};
