/**
 * Text from a sandbox or a repository shown to a person, and where the UI may send the browser.
 *
 * Threat model. Untrusted: every string from a sandbox or a repository (diffs, file names, log
 * lines, branch names) and the `next` parameter of /login (anyone can send a link). Guarantees:
 * bidirectional and invisible control characters (Trojan Source: U+202A–U+202E, U+2066–U+2069,
 * U+200E/F, U+061C, and the zero-width U+200B–U+200D, U+2060, U+FEFF) never reach the page as
 * themselves: each is shown as a visible `<U+202E>` token, so text cannot read differently from
 * what it is; `safeNext` gives only a path of this origin, starting with one `/`.
 */

const CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200B-\u200F\u061C\u2060\uFEFF]/g;

/** The text with each bidi or invisible control character replaced by a visible `<U+XXXX>`. */
export function revealControls(text: string): string {
  return text.replace(
    CONTROLS,
    (c) => `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}>`,
  );
}

/** Whether the text holds a bidi or invisible control character. */
export function hasControls(text: string): boolean {
  CONTROLS.lastIndex = 0;
  const found = CONTROLS.test(text);
  CONTROLS.lastIndex = 0;
  return found;
}

/**
 * Where /login sends the user on: `next` resolved against this origin, kept only when it stays
 * on this origin and its path starts with a single `/` (after decoding, with no control
 * character or backslash a browser might drop or turn into `/`); otherwise /tasks.
 */
export function safeNext(next: string | null, origin: string): string {
  const fallback = '/tasks';
  if (!next || !next.startsWith('/')) return fallback;
  let url: URL;
  let decoded: string;
  try {
    url = new URL(next, origin);
    decoded = decodeURIComponent(url.pathname);
  } catch {
    return fallback;
  }
  if (url.origin !== origin) return fallback;
  if (/[\u0000-\u001f\u007f\\]/.test(next) || /[\u0000-\u001f\u007f\\]/.test(decoded))
    return fallback;
  if (!url.pathname.startsWith('/') || url.pathname.startsWith('//') || decoded.startsWith('//'))
    return fallback;
  return url.pathname + url.search + url.hash;
}
