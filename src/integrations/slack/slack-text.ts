/**
 * Text Berth puts in Slack messages, made safe.
 *
 * Threat model. Untrusted: everything from a sandbox (the agent's final message, file names,
 * verify output, error messages that quote a script) and everything a person wrote in Slack.
 * Such text is hostile: it may try to make a link (`<https://evil|Fix>`), a mention (`<@U…>`,
 * `<!channel>`) or break out of Berth's own markup. Guarantees: `untrusted` escapes Slack's
 * control characters `&`, `<` and `>` (Slack's own rule for mrkdwn), so no `<…>` sequence
 * survives, and every text object holding it is sent with `verbatim: true` (slack-messages.ts),
 * so Slack does not turn bare URLs, `@here` or `#channel` into links or mentions either. Links
 * and mentions appear only where Berth builds them itself (`link`, from its own addresses).
 */

/** Hostile text as mrkdwn that shows as written and links nothing. */
export function untrusted(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A link Berth makes (`<URL|label>`): only http(s) URLs; the URL's `|` and `>` and the label's
 * markup are escaped so neither can end the link early.
 */
export function link(url: string, label: string): string {
  if (!/^https?:\/\//i.test(url)) return untrusted(label);
  const safeUrl = url.replace(/[<>|\s]/g, (c) => encodeURIComponent(c));
  return `<${safeUrl}|${untrusted(label).replace(/\|/g, '¦')}>`;
}

/**
 * At most `max` characters of `text` (cut at a line end when one is near), and whether it was
 * cut; counted before escaping, which only lengthens it by a bounded factor the caller allows for.
 */
export function cut(text: string, max: number): { text: string; cut: boolean } {
  if (text.length <= max) return { text, cut: false };
  let head = text.slice(0, max);
  const lineEnd = head.lastIndexOf('\n');
  if (lineEnd > max * 0.7) head = head.slice(0, lineEnd);
  return { text: `${head.trimEnd()}…`, cut: true };
}

/** A mention of a Slack user id Berth was given by Slack itself (checked to look like one). */
export function mention(userId: string): string {
  return /^[UW][A-Z0-9]{2,30}$/.test(userId) ? `<@${userId}>` : '';
}
