import type { ChangedFile } from '../domain/task/attempt.js';
import { BerthError } from '../errors/berth-error.js';
import { readDiffHeadersAsync, type DiffSection } from '../git/diff-headers.js';
import { maskDiffText } from '../secrets/diff-masking.js';
import type { SecretMasker } from '../secrets/secret-masker.js';
import type { SandboxContext } from './sandbox-context.js';

/**
 * The checks an attempt's diff passes when it comes out of the sandbox, before it is stored.
 *
 * Threat model: the diff is made by `git` inside the sandbox, where the agent ran as root and
 * could have replaced it, and by whatever setup wrote into the workspace. Two things must never
 * reach the store, the API or a push:
 *   - a diff not shaped like Berth's (copy or rename headers, paths outside the tree or inside
 *     `.git`; see git/diff-headers.ts): the attempt fails with what was refused, and the diff is
 *     not kept;
 *   - a secret value of the environment (a setup script that wrote a token into `.npmrc` in the
 *     repository makes every diff carry it, cached attempts included): the diff is kept with
 *     every value masked (the attempt's masker: the values and their encoded forms, matched on
 *     each side's content without the diff's line prefixes, in turns of the event loop:
 *     secrets/diff-masking.ts) and the blob ids of those sections cleared, and the
 *     files that held one are listed (`secretFiles`, names masked too), so `task apply` and
 *     `task pr` refuse it and a person can see why. A value inside a binary patch (compressed,
 *     base85) is not recognised.
 * The list of changed files shown with the result names exactly the diff's files (a numstat from
 * the sandbox that names others, or misses one, cannot make `task show` hide a change).
 */

export interface CheckedDiff {
  /** The diff, secret values masked. */
  diff: string;
  /** Files whose section held a secret value (names masked); empty when none. */
  secretFiles: string[];
}

export interface CheckedResult extends CheckedDiff {
  /** The diff's files, in its order, with the numstat's counts where it has them. */
  files: ChangedFile[];
}

export async function checkResultDiff(
  ctx: SandboxContext,
  diff: string,
  numstat: readonly ChangedFile[] = [],
): Promise<CheckedResult> {
  let sections;
  try {
    sections = (await readDiffHeadersAsync(diff)).sections;
  } catch (error) {
    if (!(error instanceof BerthError)) throw error;
    throw new BerthError(
      'task_failed',
      `the diff from the sandbox was refused and not kept: ${ctx.masker.mask(error.message)}`,
      {
        reason: 'results',
        refused: ctx.masker.mask(
          typeof error.details.refused === 'string' ? error.details.refused : '',
        ),
      },
    );
  }
  const counts = new Map(numstat.map((file) => [file.path, file]));
  const changed: ChangedFile[] = [...new Set(sections.map((s) => s.path))].map(
    (path) =>
      counts.get(path) ?? {
        path,
        added: null,
        removed: null,
        binary: false,
      },
  );
  const masked = changed.map((file) => ({ ...file, path: ctx.masker.mask(file.path) }));
  const checked = { ...(await maskSections(diff, sections, ctx.masker)), files: masked };
  const files = checked.secretFiles;
  if (files.length === 0) return checked;
  ctx.emit({
    type: 'warning',
    message: `the diff holds a secret value of the environment in ${files.join(', ')}: it is kept with the value masked, and berth task apply and berth task pr refuse it. Keep credentials out of the repository's working tree (a file outside it, or a .gitignore entry; see docs/results.md)`,
    details: { secretFiles: files },
  });
  return checked;
}

async function maskSections(
  diff: string,
  sections: DiffSection[],
  masker: SecretMasker,
): Promise<CheckedDiff> {
  if (masker.isEmpty) return { diff, secretFiles: [] };
  const secretFiles = new Set<string>();
  const parts: string[] = [];
  for (const section of sections) {
    const { text, found } = await maskDiffText(diff, section.start, section.end, masker);
    if (found) {
      secretFiles.add(masker.mask(section.path));
      parts.push(withoutBlobIds(text));
    } else parts.push(text);
  }
  return secretFiles.size === 0
    ? { diff, secretFiles: [] }
    : { diff: parts.join(''), secretFiles: [...secretFiles] };
}

/**
 * A section that held a secret loses the blob ids of its `index` line (zeros, as git writes for
 * no file): the id of the new file is a hash of its content, so a member could otherwise test
 * guesses of the masked value offline. Such a diff is never applied (task apply and task pr
 * refuse it), so nothing needs the ids.
 */
function withoutBlobIds(section: string): string {
  const headerEnd = section.search(/^(?:@@ |GIT binary patch$)/m);
  const header = headerEnd === -1 ? section : section.slice(0, headerEnd);
  const cleared = header.replace(
    /^index ([0-9a-f]+)\.\.([0-9a-f]+)/m,
    (_line, a: string, b: string) => `index ${'0'.repeat(a.length)}..${'0'.repeat(b.length)}`,
  );
  return headerEnd === -1 ? cleared : cleared + section.slice(headerEnd);
}

/** A diff that is not read as sections (stored before the header check): named as a whole. */
export const UNREAD_DIFF = '(the whole diff)';

/**
 * The same masking for a diff stored before results were checked (task-service.ts serves those
 * through it): by section when its headers read, else as a whole.
 */
export async function maskStoredDiff(diff: string, masker: SecretMasker): Promise<CheckedDiff> {
  let sections: DiffSection[];
  try {
    sections = (await readDiffHeadersAsync(diff)).sections;
  } catch {
    const { text, found } = await maskDiffText(diff, 0, diff.length, masker);
    return { diff: text, secretFiles: found ? [UNREAD_DIFF] : [] };
  }
  return maskSections(diff, sections, masker);
}
