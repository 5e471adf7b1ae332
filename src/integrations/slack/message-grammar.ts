/**
 * The grammar of a message that mentions Berth (pure; no I/O): the mention itself, options as
 * `key=value` words at the start or the end of the text (`env=NAME`, `attempts=N`, `branch=B`,
 * `sha=S`), and the rest, the prompt. A `key=value` word in the middle of the prompt is prompt
 * text. Slack's own markup is turned back into what the person typed: `&lt;` `&gt;` `&amp;`
 * decoded, `<https://x|label>` as its URL, `<@U…>` as `@U…`, `<#C…|name>` as `#name`.
 *
 * The text is untrusted: it only ever becomes a prompt, an environment name looked up by the
 * routing, or numbers and git names checked here.
 */

export interface MessageOptions {
  env?: string;
  attempts?: number;
  branch?: string;
  sha?: string;
}

export type ParsedMessage =
  { ok: true; options: MessageOptions; prompt: string } | { ok: false; problem: string };

const OPTION = /^(env|attempts|branch|sha)=(.*)$/;
const ENV_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const SHA = /^[0-9a-f]{7,40}$/i;
// The same rules as the environment schema's branch names (environment-spec.ts).
const BAD_BRANCH = /[\s\x00-\x1f\x7f~^:?*[\\]|\.\.|@\{|\/\/|^\/|\/$|\.lock$|\.$|^-/;

/** Slack's markup back to plain text (see the module comment); the bot's own mention removed. */
export function plainText(text: string, botUserId?: string): string {
  return text
    .replace(/<([^<>]*)>/g, (_all, inner: string) => {
      const [target = '', label] = inner.split('|', 2);
      if (target.startsWith('@'))
        return botUserId !== undefined && target === `@${botUserId}` ? '' : target;
      if (target.startsWith('#')) return label !== undefined ? `#${label}` : target;
      if (target.startsWith('!')) return label ?? `@${target.slice(1)}`;
      return target;
    })
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function parseOption(
  key: string,
  value: string,
  options: MessageOptions,
  maxAttempts: number,
): string | undefined {
  if (key in options) return `${key}= is given twice`;
  switch (key) {
    case 'env':
      if (!ENV_NAME.test(value)) return `env=${value} is not an environment name`;
      options.env = value;
      return undefined;
    case 'attempts': {
      if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 1)
        return `attempts= takes a whole number from 1 to ${maxAttempts} (got "${value}")`;
      const n = Number(value);
      if (n > maxAttempts)
        return `attempts=${n} is more than this server allows: at most ${maxAttempts} attempts (BERTH_MAX_ATTEMPTS)`;
      options.attempts = n;
      return undefined;
    }
    case 'branch':
      if (value === '' || value.length > 255 || BAD_BRANCH.test(value))
        return `branch=${value} is not a valid git branch name`;
      options.branch = value;
      return undefined;
    default:
      if (!SHA.test(value)) return `sha=${value} is not a commit SHA (7 to 40 hex digits)`;
      options.sha = value.toLowerCase();
      return undefined;
  }
}

/**
 * Parses a mention's text (as Slack sends it). `maxAttempts` is the server's cap: more is a
 * problem, reported with the cap. An empty prompt is not a problem here (`prompt === ''`): the
 * caller answers it with an example.
 */
export function parseMessage(
  text: string,
  botUserId: string | undefined,
  maxAttempts: number,
): ParsedMessage {
  const words = plainText(text, botUserId)
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  const options: MessageOptions = {};
  let start = 0;
  let end = words.length;
  const take = (word: string | undefined): string | undefined | null => {
    const match = word !== undefined ? OPTION.exec(word) : null;
    if (!match) return null;
    return parseOption(match[1] ?? '', match[2] ?? '', options, maxAttempts);
  };
  for (; start < end; start++) {
    const problem = take(words[start]);
    if (problem === null) break;
    if (problem !== undefined) return { ok: false, problem };
  }
  for (; end > start; end--) {
    const problem = take(words[end - 1]);
    if (problem === null) break;
    if (problem !== undefined) return { ok: false, problem };
  }
  if (options.branch !== undefined && options.sha !== undefined)
    return { ok: false, problem: 'give either branch= or sha=, not both' };
  // The prompt keeps the person's line breaks: cut the option words off the original text.
  const prompt = cutWords(plainText(text, botUserId), start, words.length - end).trim();
  return { ok: true, options, prompt };
}

/** `text` without its first `head` and last `tail` whitespace-separated words. */
function cutWords(text: string, head: number, tail: number): string {
  let out = text.trim();
  for (let i = 0; i < head; i++) out = out.replace(/^\S+\s*/, '');
  for (let i = 0; i < tail; i++) out = out.replace(/\s*\S+$/, '');
  return out;
}
