/**
 * The grammar of a comment that asks Berth for something (docs/github.md, "Grammar").
 *
 * Threat model: a comment is written by anyone who can comment on the repository, and is quoted,
 * edited and pasted around. Only a line that starts with the mention asks Berth; a mention
 * anywhere else (mid-sentence, in a quote `> @berth …`, in a code block or a code span, in an
 * HTML comment or a folded `<details>`) is someone talking about Berth, not to it, or hidden. Nothing here decides who may ask (the permission
 * check does), and the prompt is never interpreted: it becomes the task's prompt as text.
 *
 * A comment asks when one of its lines, outside fenced code blocks, is (up to 3 leading spaces,
 * as Markdown allows for a paragraph) `@MENTION` followed by the end of the line, a space, or
 * `:`/`,` then a space. A line that starts inside an HTML comment (from `<!--` anywhere to the
 * next `-->`), a code span running over several lines of a paragraph, or a `<details>` element
 * (nested, any case) asks nothing: GitHub hides or shows it as code. Such markup left open hides
 * every line after it. A line of its own under a list item (`- item` then `  @berth …`) does
 * ask: GitHub shows it at the start of a line. Of that first asking line:
 * - `key=value` words right after the mention are options: `attempts=N` (1..maxAttempts) and
 *   `env=NAME`; a repeated or unknown-valued option is refused with the reason;
 * - `review` as the first word (after the options) asks for a review; the rest is extra
 *   instructions;
 * - otherwise the rest of the line and every following line are the prompt.
 */

export interface CommentGrammarSettings {
  /** The bot's name, without `@` (`BERTH_GITHUB_MENTION`); compared without case, as GitHub does. */
  mention: string;
  /** The most attempts a comment may ask for (the server's `BERTH_MAX_ATTEMPTS`). */
  maxAttempts: number;
}

export interface CommentOptions {
  attempts?: number;
  environment?: string;
}

export type CommentRequest =
  | { kind: 'none' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'task'; prompt: string; options: CommentOptions }
  | { kind: 'review'; instructions: string; options: CommentOptions };

const ENVIRONMENT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;
const FENCE = /^ {0,3}(`{3,}|~{3,})/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** What hides the start of the next line: an HTML comment, a code span, `<details>`. */
interface Hidden {
  comment: boolean;
  /** The length of the backtick run that opened a code span still open, else 0. */
  codeTicks: number;
  /** How many `<details>` are open. */
  details: number;
}

const MARKUP = /<!--|`+|<details(?=[\s>])|<\/details\s*>/gi;

/** Whether a run of exactly `ticks` backticks starts at or after `from` in `text`. */
function closingRun(text: string, from: number, ticks: number): number {
  const run = /`+/g;
  run.lastIndex = from;
  for (let m = run.exec(text); m; m = run.exec(text)) if (m[0].length === ticks) return m.index;
  return -1;
}

/**
 * Reads line `i` for what it opens or closes: `<!--` anywhere opens an HTML comment up to the
 * next `-->`; a backtick run opens a code span when a run of the same length closes it in the
 * same paragraph (else it is text, as Markdown reads it); `<details…>` and `</details>` nest.
 */
function scanLine(lines: string[], i: number, hidden: Hidden): void {
  const line = lines[i] ?? '';
  let pos = 0;
  while (pos < line.length) {
    if (hidden.comment) {
      const end = line.indexOf('-->', pos);
      if (end < 0) return;
      hidden.comment = false;
      pos = end + 3;
      continue;
    }
    if (hidden.codeTicks > 0) {
      const end = closingRun(line, pos, hidden.codeTicks);
      if (end < 0) return;
      pos = end + hidden.codeTicks;
      hidden.codeTicks = 0;
      continue;
    }
    MARKUP.lastIndex = pos;
    const m = MARKUP.exec(line);
    if (!m) return;
    const token = m[0];
    pos = m.index + token.length;
    if (token === '<!--') {
      hidden.comment = true;
    } else if (token.startsWith('`')) {
      const end = closingRun(line, pos, token.length);
      if (end >= 0) {
        pos = end + token.length;
        continue;
      }
      // Closed on a later line of the same paragraph: open until then.
      for (let j = i + 1; j < lines.length && (lines[j] ?? '').trim() !== ''; j++) {
        if (closingRun(lines[j] ?? '', 0, token.length) >= 0) {
          hidden.codeTicks = token.length;
          return;
        }
      }
    } else if (token.startsWith('</')) {
      hidden.details = Math.max(0, hidden.details - 1);
    } else {
      hidden.details++;
    }
  }
}

export function parseComment(body: string, settings: CommentGrammarSettings): CommentRequest {
  const lines = body.replace(/\r\n?/g, '\n').split('\n');
  const mentionLine = new RegExp(
    `^ {0,3}@${escapeRegExp(settings.mention)}(?:[:,]?(?:[ \\t]+|$))`,
    'i',
  );
  let fence: string | undefined;
  const hidden: Hidden = { comment: false, codeTicks: 0, details: 0 };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.trim() === '') hidden.codeTicks = 0; // a code span ends with its paragraph
    const opened = FENCE.exec(line);
    if (fence !== undefined) {
      // A fence closes with the same character, at least as long, nothing after it.
      if (opened?.[1] && opened[1][0] === fence[0] && opened[1].length >= fence.length)
        if (line.trim() === opened[1]) fence = undefined;
      continue;
    }
    const startHidden = hidden.comment || hidden.codeTicks > 0 || hidden.details > 0;
    if (opened?.[1] && !hidden.comment && hidden.codeTicks === 0) {
      fence = opened[1];
      continue;
    }
    scanLine(lines, i, hidden);
    if (startHidden) continue;
    const match = mentionLine.exec(line);
    if (!match) continue;
    const rest = line.slice(match[0].length);
    return request(rest, lines.slice(i + 1), settings);
  }
  return { kind: 'none' };
}

function request(
  rest: string,
  following: string[],
  settings: CommentGrammarSettings,
): CommentRequest {
  const words = rest.split(/[ \t]+/).filter((w) => w !== '');
  const options: CommentOptions = {};
  let used = 0;
  for (const word of words) {
    const option = /^([a-z]+)=(.*)$/i.exec(word);
    if (!option) break;
    const key = (option[1] ?? '').toLowerCase();
    const value = option[2] ?? '';
    if (key === 'attempts') {
      if (options.attempts !== undefined) return invalid('attempts= is given twice');
      if (!/^[0-9]{1,3}$/.test(value) || Number(value) < 1 || Number(value) > settings.maxAttempts)
        return invalid(`attempts= takes a whole number from 1 to ${settings.maxAttempts}`);
      options.attempts = Number(value);
    } else if (key === 'env') {
      if (options.environment !== undefined) return invalid('env= is given twice');
      if (!ENVIRONMENT_NAME.test(value)) return invalid('env= takes an environment name');
      options.environment = value;
    } else {
      // Not an option Berth knows: it is the start of the prompt (`x=1 is wrong`).
      break;
    }
    used++;
  }
  const remaining = words.slice(used);
  const afterOptions = remaining.join(' ');
  const tail = following.join('\n');
  if ((remaining[0] ?? '').toLowerCase() === 'review') {
    const instructions = [remaining.slice(1).join(' '), tail]
      .filter((t) => t.trim() !== '')
      .join('\n')
      .trim();
    return { kind: 'review', instructions, options };
  }
  const prompt = [afterOptions, tail]
    .filter((t) => t.trim() !== '')
    .join('\n')
    .trim();
  if (prompt === '')
    return invalid(`say what to do after the mention (@${settings.mention} fix the failing test)`);
  return { kind: 'task', prompt, options };
}

function invalid(reason: string): CommentRequest {
  return { kind: 'invalid', reason };
}
