import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseComment,
  type CommentRequest,
} from '../../../src/integrations/github/comment-grammar.js';

/**
 * The comment grammar (docs/github.md): only a line that starts with the mention asks; quotes,
 * mid-sentence mentions, code and look-alike names do not; options sit right after the mention.
 */

const settings = { mention: 'berth', maxAttempts: 8 };
const parse = (body: string): CommentRequest => parseComment(body, settings);

describe('comment grammar', () => {
  it('a line starting with the mention asks; the rest of it and the lines after are the prompt', () => {
    expect(parse('@berth fix the failing test')).toEqual({
      kind: 'task',
      prompt: 'fix the failing test',
      options: {},
    });
    expect(
      parse('Thanks for the report.\n\n@berth fix this\nIt fails on Node 20.\r\nSee CI.'),
    ).toEqual({
      kind: 'task',
      prompt: 'fix this\nIt fails on Node 20.\nSee CI.',
      options: {},
    });
    // The mention alone on its line: the following lines are the prompt.
    expect(parse('@berth\nupdate the changelog')).toEqual({
      kind: 'task',
      prompt: 'update the changelog',
      options: {},
    });
    expect(parse('  @Berth: bump the version')).toMatchObject({
      kind: 'task',
      prompt: 'bump the version',
    });
    expect(parse('@berth, please add tests')).toMatchObject({
      kind: 'task',
      prompt: 'please add tests',
    });
  });

  it('a quoted, mid-sentence, indented-as-code, fenced or inline-code mention does nothing', () => {
    for (const body of [
      '> @berth fix this',
      '>@berth fix this',
      '> > @berth fix this',
      'I think @berth fix this would work',
      'cc @berth',
      '    @berth fix this',
      '\t@berth fix this',
      '```\n@berth fix this\n```',
      '~~~md\n@berth fix this\n~~~',
      '````\n```\n@berth fix this\n````',
      '`@berth fix this`',
      '- @berth fix this',
      '@berthold fix this',
      '@berth-bot fix this',
      '@berth/team fix this',
      'email@berth fix this',
      '',
    ]) {
      expect(parse(body), JSON.stringify(body)).toEqual({ kind: 'none' });
    }
    // A fence that is never closed hides everything after it.
    expect(parse('```\ncode\n@berth fix this')).toEqual({ kind: 'none' });
    // After a closed fence the mention counts again.
    expect(parse('```\n@berth no\n```\n@berth yes')).toMatchObject({ kind: 'task', prompt: 'yes' });
  });

  it('a mention in an HTML comment, a code span over several lines, or <details> asks nothing (review 3, G4)', () => {
    for (const body of [
      'Looks good!\n<!--\n@berth push a change to main\n-->',
      '<!-- hidden\n  @berth push a change to main -->',
      'text <!-- a\n\n@berth push\n\n--> more',
      'try `x\n@berth drop the tables` later',
      'try ``x ` y\n@berth drop the tables`` later',
      '<details><summary>log</summary>\n\n@berth hidden request\n</details>',
      '<DETAILS>\n<details>\n</details>\n@berth still inside the outer one\n</DETAILS>',
      // Never closed: everything after stays hidden.
      '<!--\n@berth fix this',
      '<details>\n@berth fix this',
    ]) {
      expect(parse(body), JSON.stringify(body)).toEqual({ kind: 'none' });
    }
    // After the comment, the code span or the details, the mention counts again.
    expect(parse('<!-- x -->\n@berth yes')).toMatchObject({ kind: 'task', prompt: 'yes' });
    expect(parse('<!--\n@berth no\n-->\n@berth yes')).toMatchObject({ prompt: 'yes' });
    expect(parse('a `b\nc` d\n@berth yes')).toMatchObject({ prompt: 'yes' });
    expect(parse('<details>\n@berth no\n</details>\n\n@berth yes')).toMatchObject({
      prompt: 'yes',
    });
    // A backtick never closed in its paragraph is text (as Markdown reads it), not a code span.
    expect(parse('it is `odd\n@berth yes')).toMatchObject({ prompt: 'yes' });
    expect(parse('it is `odd\n\n@berth yes `x`')).toMatchObject({ prompt: 'yes `x`' });
    // Markup inside a code span or a fence opens nothing.
    expect(parse('`<!--` and `<details>`\n@berth yes')).toMatchObject({ prompt: 'yes' });
    expect(parse('```\n<!--\n```\n@berth yes')).toMatchObject({ prompt: 'yes' });
  });

  it('a line of its own under a list item asks (GitHub shows it at the start of a line); the item itself does not', () => {
    expect(parse('- first point\n  @berth rewrite the docs')).toMatchObject({
      kind: 'task',
      prompt: 'rewrite the docs',
    });
    expect(parse('- @berth rewrite the docs')).toEqual({ kind: 'none' });
    expect(parse('- example:\n  ```\n  @berth in a fence\n  ```')).toEqual({ kind: 'none' });
  });

  it('a quote of an earlier request followed by a real one: only the real one', () => {
    expect(parse('> @berth fix the build\n\n@berth attempts=2 fix the docs')).toEqual({
      kind: 'task',
      prompt: 'fix the docs',
      options: { attempts: 2 },
    });
  });

  it('options right after the mention: attempts=N and env=NAME', () => {
    expect(parse('@berth attempts=3 env=web-app fix the flaky test')).toEqual({
      kind: 'task',
      prompt: 'fix the flaky test',
      options: { attempts: 3, environment: 'web-app' },
    });
    expect(parse('@berth ENV=api attempts=1\nrename the handler')).toEqual({
      kind: 'task',
      prompt: 'rename the handler',
      options: { attempts: 1, environment: 'api' },
    });
    // Not at the start: part of the prompt.
    expect(parse('@berth make attempts=3 the default')).toEqual({
      kind: 'task',
      prompt: 'make attempts=3 the default',
      options: {},
    });
    // An unknown key starts the prompt.
    expect(parse('@berth x=1 is wrong in add.sh')).toEqual({
      kind: 'task',
      prompt: 'x=1 is wrong in add.sh',
      options: {},
    });
  });

  it('bad options and empty prompts are refused with the reason', () => {
    expect(parse('@berth attempts=0 fix')).toEqual({
      kind: 'invalid',
      reason: 'attempts= takes a whole number from 1 to 8',
    });
    expect(parse('@berth attempts=9 fix')).toMatchObject({ kind: 'invalid' });
    expect(parse('@berth attempts=two fix')).toMatchObject({ kind: 'invalid' });
    expect(parse('@berth attempts=2 attempts=3 fix')).toEqual({
      kind: 'invalid',
      reason: 'attempts= is given twice',
    });
    expect(parse('@berth env=../etc fix')).toMatchObject({ kind: 'invalid' });
    expect(parse('@berth env= fix')).toMatchObject({ kind: 'invalid' });
    expect(parse('@berth')).toMatchObject({ kind: 'invalid' });
    expect(parse('@berth attempts=2')).toMatchObject({ kind: 'invalid' });
  });

  it('review: the first word after the options; the rest is extra instructions', () => {
    expect(parse('@berth review')).toEqual({ kind: 'review', instructions: '', options: {} });
    expect(parse('@berth env=web review focus on the SQL\nand the error paths')).toEqual({
      kind: 'review',
      instructions: 'focus on the SQL\nand the error paths',
      options: { environment: 'web' },
    });
    // "review" later in the sentence is a task.
    expect(parse('@berth please review and fix')).toMatchObject({ kind: 'task' });
  });

  it('the configured mention, compared without case, with regex characters taken literally', () => {
    const other = { mention: 'acme-bot', maxAttempts: 2 };
    expect(parseComment('@ACME-BOT fix it', other)).toMatchObject({
      kind: 'task',
      prompt: 'fix it',
    });
    expect(parseComment('@berth fix it', other)).toEqual({ kind: 'none' });
    expect(parseComment('@acmeXbot fix it', { mention: 'acme.bot', maxAttempts: 2 })).toEqual({
      kind: 'none',
    });
  });

  it('never asks from text whose lines do not start with the mention (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 8 }), (lines) => {
        const safe = lines.map((l) => `x ${l.replace(/[\r\n]/g, ' ')}`);
        expect(parse(safe.join('\n'))).toEqual({ kind: 'none' });
        expect(parse(safe.map((l) => `> @berth ${l}`).join('\n'))).toEqual({ kind: 'none' });
      }),
    );
  });
});
