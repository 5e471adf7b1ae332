/**
 * Markdown Berth writes on GitHub (pull request bodies, replies, review bodies) around text a
 * sandbox produced: the GitHub integration's replies and `berth task pr`'s default body.
 *
 * Threat model: everything a sandbox produced (the agent's final message, file names, verify
 * output) is hostile text written to make Berth's own comment do something: ping people or teams
 * (`@org/everyone`), close issues when a pull request merges (`Fixes #1` in a body), inject HTML
 * (`<img src=tracker>`, `<details>` hiding text), break out of a code block to do any of these,
 * or reorder what a reader sees with bidirectional controls. So hostile text goes into a fenced
 * code block whose fence is longer than any run of backticks in it (`codeBlock`), where GitHub
 * links, mentions and closes nothing; where it must stay Markdown (a review's body) `inertMarkdown`
 * breaks every mention and issue reference and escapes HTML. Bidirectional and invisible controls
 * become visible `<U+XXXX>` tokens, and the text is cut to fit GitHub's comment size.
 */

/** GitHub refuses a comment body over 65,536 characters; hostile text gets a part of that. */
export const HOSTILE_TEXT_MAX = 20_000;

const CONTROLS =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

/** Controls shown as tokens, cut to `max` characters (with a note of how much was left out). */
export function visibleText(text: string, max = HOSTILE_TEXT_MAX): string {
  const shown = text.replace(
    CONTROLS,
    (c) => `<U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}>`,
  );
  if (shown.length <= max) return shown;
  return `${shown.slice(0, max)}\n… (${shown.length - max} more characters not shown)`;
}

/** Hostile text as a fenced code block no line of it can close. */
export function codeBlock(text: string, max = HOSTILE_TEXT_MAX): string {
  const shown = visibleText(text, max);
  const longest = Math.max(0, ...(shown.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}text\n${shown}\n${fence}`;
}

/**
 * Hostile text kept as Markdown (a review's body): `@name` and `#123` / `GH-123` / `owner/repo#1`
 * references are broken with a zero-width joiner shown by no renderer (no ping, no link, no
 * closing keyword), and `<`, `&` are escaped so no HTML is made.
 */
export function inertMarkdown(text: string, max = HOSTILE_TEXT_MAX): string {
  return visibleText(text, max)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/@(?=[A-Za-z0-9_-])/g, '@\u2060')
    .replace(/#(?=[0-9])/g, '#\u2060')
    .replace(/\b(GH)-(?=[0-9])/gi, '$1-\u2060');
}

/** A name Berth chose or GitHub gave (a branch, a task id), as inline code. */
export function inlineCode(text: string): string {
  const shown = visibleText(text, 300).replace(/[\r\n]+/g, ' ');
  const longest = Math.max(0, ...(shown.match(/`+/g) ?? []).map((run) => run.length));
  const ticks = '`'.repeat(longest + 1);
  return `${ticks}${longest > 0 ? ' ' : ''}${shown}${longest > 0 ? ' ' : ''}${ticks}`;
}
