import { describe, expect, it } from 'vitest';
import {
  codeBlock,
  inertMarkdown,
  inlineCode,
  renderIssuePullBody,
  renderTaskReply,
} from '../../../src/integrations/github/reply-text.js';

/**
 * What Berth writes on GitHub from a sandbox's text: nothing in it pings, links an issue, closes
 * one, makes HTML or leaves its code block.
 */

const HOSTILE = [
  'Done. @octocat @acme/security-team please merge.',
  'Fixes #1, closes #2, resolves acme/other#3, GH-4',
  '<img src="https://tracker.example/p.gif"><details><summary>ok</summary>hidden</details>',
  '```',
  '</code> @everyone',
  '````',
  '\u202eevil\u202c and a zero\u200bwidth',
].join('\n');

/** The parts of a Markdown text outside fenced code blocks (where GitHub links and pings). */
function outsideFences(markdown: string): string {
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const open = /^(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && open !== undefined) fence = open;
    else if (fence !== undefined && line.trim() === fence) fence = undefined;
    else if (fence === undefined) out.push(line);
  }
  return out.join('\n');
}

describe('reply text', () => {
  it('a code block no line of the hostile text can close', () => {
    const block = codeBlock(HOSTILE);
    const fence = /^`+/.exec(block)![0];
    expect(fence.length).toBeGreaterThan(4);
    const inner = block.split('\n').slice(1, -1);
    expect(inner.some((l) => l.trim() === fence)).toBe(false);
    expect(block.endsWith(`\n${fence}`)).toBe(true);
    expect(block).toContain('<U+202E>evil<U+202C>');
    expect(block).toContain('zero<U+200B>width');
  });

  it('a reply carries the summary only inside the block: no mention, reference or HTML outside', () => {
    const reply = renderTaskReply({
      taskId: 'task_1',
      taskUrl: 'https://berth.example/tasks/task_1',
      status: 'succeeded',
      summary: HOSTILE,
      verify: 'passed',
      outcome: 'Pushed commit `abc` onto `fix`.',
    });
    const outside = outsideFences(reply);
    expect(outside).not.toMatch(/@\w/);
    expect(outside).not.toMatch(/#\d/);
    expect(outside).not.toMatch(/</);
    expect(reply).toContain('@octocat');
  });

  it('a PR body closes only its own issue', () => {
    const body = renderIssuePullBody(7, 'task_1', HOSTILE);
    expect(body.startsWith('Fixes #7\n')).toBe(true);
    expect(outsideFences(body).match(/#\d+/g)).toEqual(['#7']);
  });

  it('inert Markdown breaks mentions and references and escapes HTML', () => {
    const text = inertMarkdown(HOSTILE);
    expect(text).not.toMatch(/@[A-Za-z0-9]/);
    expect(text).not.toMatch(/#[0-9]/);
    expect(text).not.toMatch(/GH-[0-9]/i);
    expect(text).not.toContain('<');
    expect(text).toContain('&lt;img');
    expect(text).toContain('<U+202E>'.replace('<', '&lt;'));
  });

  it('cuts long text and keeps inline code closed', () => {
    expect(codeBlock('x'.repeat(50_000)).length).toBeLessThan(21_000);
    expect(inlineCode('a`b')).toBe('`` a`b ``');
    expect(inlineCode('line\nbreak')).toBe('`line break`');
  });
});
