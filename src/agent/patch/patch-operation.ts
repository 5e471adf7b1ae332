/** One file change of a patch, as parsed (paths as written in the patch, not yet confined). */
export type PatchOperation =
  | { kind: 'add'; path: string; content: string }
  | { kind: 'delete'; path: string }
  | { kind: 'update'; path: string; moveTo?: string; hunks: Hunk[] };

export interface HunkLine {
  op: ' ' | '-' | '+';
  text: string;
}

export interface Hunk {
  /** 1-based position in the patch's list of hunks for its file (for error messages). */
  number: number;
  /** The text after `@@` in the Begin Patch format: a line to find before the hunk's lines. */
  anchor?: string;
  /** Unified diffs: the old file's first line number, a hint where to look first. */
  oldStart?: number;
  lines: HunkLine[];
  /** The hunk's lines end at the end of the file (`*** End of File`). */
  endOfFile: boolean;
}
