/**
 * The grammar of a comment that asks Berth for something (docs/github.md, "Grammar").
 *
 * Threat model: a comment is written by anyone who can comment on the repository, and is quoted,
 * edited and pasted around. Only a line that starts with the mention asks Berth; a mention
 * anywhere else (mid-sentence, in a quote `> @berth …`, in a code block or an inline code span)
 * is someone talking about Berth, not to it. Nothing here decides who may ask (the permission
 * check does), and the prompt is never interpreted: it becomes the task's prompt as text.
 *
 * A comment asks when one of its lines, outside fenced code blocks, is (up to 3 leading spaces,
 * as Markdown allows for a paragraph) `@MENTION` followed by the end of the line, a space, or
 * `:`/`,` then a space. Of that first such line:
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

export function parseComment(body: string, settings: CommentGrammarSettings): CommentRequest {
  const lines = body.replace(/\r\n?/g, '\n').split('\n');
  const mentionLine = new RegExp(
    `^ {0,3}@${escapeRegExp(settings.mention)}(?:[:,]?(?:[ \\t]+|$))`,
    'i',
  );
  let fence: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const opened = FENCE.exec(line);
    if (fence !== undefined) {
      // A fence closes with the same character, at least as long, nothing after it.
      if (opened?.[1] && opened[1][0] === fence[0] && opened[1].length >= fence.length)
        if (line.trim() === opened[1]) fence = undefined;
      continue;
    }
    if (opened?.[1]) {
      fence = opened[1];
      continue;
    }
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
