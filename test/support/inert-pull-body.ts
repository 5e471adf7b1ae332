import { expect } from 'vitest';

/**
 * Checks a pull request body Berth made from hostile text (an agent's final message): the text is
 * there, whole, inside one fenced code block that no line of it closes, and what Berth wrote
 * around it has no mention, issue reference, closing keyword, HTML or image.
 */
export function expectInertPullBody(body: string, hostile: string): void {
  const block = /^(`{3,})text\n([\s\S]*?)\n\1$/m.exec(body);
  expect(block, `no fenced block in:\n${body}`).not.toBeNull();
  const [whole = '', fence = '', inside = ''] = block ?? [];
  expect(inside).toBe(hostile);
  // No run of backticks inside is as long as the fence: no line of it can close the block.
  for (const run of inside.match(/`+/g) ?? []) expect(run.length).toBeLessThan(fence.length);
  const outside = body.replace(whole, '');
  expect(outside).not.toMatch(/@|#[0-9]|<|!\[|https?:|\b(fix|close|resolve)[a-z]*\b/i);
}
