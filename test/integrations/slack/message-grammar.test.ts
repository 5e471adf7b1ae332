import { describe, expect, it } from 'vitest';
import { parseMessage, plainText } from '../../../src/integrations/slack/message-grammar.js';

/** The mention grammar (pure): options at the start or end, the rest the prompt. */

const BOT = 'UBERTH';
const parse = (text: string, max = 8) => parseMessage(text, BOT, max);

describe('the mention grammar', () => {
  it('takes the prompt without the mention, options at either end', () => {
    expect(parse(`<@${BOT}> fix the failing integration tests in the payments service`)).toEqual({
      ok: true,
      options: {},
      prompt: 'fix the failing integration tests in the payments service',
    });
    expect(parse(`<@${BOT}> env=payments attempts=3 fix the tests branch=release/1.2`)).toEqual({
      ok: true,
      options: { env: 'payments', attempts: 3, branch: 'release/1.2' },
      prompt: 'fix the tests',
    });
    expect(parse(`<@${BOT}|berth> fix it sha=ABCDEF1`)).toEqual({
      ok: true,
      options: { sha: 'abcdef1' },
      prompt: 'fix it',
    });
  });

  it('keeps option-like words in the middle, line breaks and other mentions as prompt text', () => {
    const parsed = parse(`<@${BOT}> set attempts=3 in the config\nand ask <@U0BOB>`);
    expect(parsed).toEqual({
      ok: true,
      options: {},
      prompt: 'set attempts=3 in the config\nand ask @U0BOB',
    });
  });

  it("decodes Slack's markup: entities, links, channels", () => {
    expect(
      plainText('a &lt;b&gt; &amp;amp; <https://x.test/a?b=1|x.test> <#C01|general> <!here>'),
    ).toBe('a <b> &amp; https://x.test/a?b=1 #general @here');
  });

  it('refuses bad options with a reason', () => {
    expect(parse(`<@${BOT}> attempts=9 fix`)).toEqual({
      ok: false,
      problem:
        'attempts=9 is more than this server allows: at most 8 attempts (BERTH_MAX_ATTEMPTS)',
    });
    expect(parse(`<@${BOT}> attempts=3 fix`, 2)).toMatchObject({ ok: false });
    expect(parse(`<@${BOT}> attempts=0 fix`)).toMatchObject({ ok: false });
    expect(parse(`<@${BOT}> env=a env=b fix`)).toEqual({
      ok: false,
      problem: 'env= is given twice',
    });
    expect(parse(`<@${BOT}> env=Bad!Name fix`)).toMatchObject({ ok: false });
    expect(parse(`<@${BOT}> branch=-x fix`)).toMatchObject({ ok: false });
    expect(parse(`<@${BOT}> branch=a..b fix`)).toMatchObject({ ok: false });
    expect(parse(`<@${BOT}> sha=xyz fix`)).toMatchObject({ ok: false });
    expect(parse(`<@${BOT}> branch=main sha=abcdef1 fix`)).toEqual({
      ok: false,
      problem: 'give either branch= or sha=, not both',
    });
  });

  it('an empty prompt parses (the caller answers it with an example)', () => {
    expect(parse(`<@${BOT}>`)).toEqual({ ok: true, options: {}, prompt: '' });
    expect(parse(`<@${BOT}>   env=payments  `)).toEqual({
      ok: true,
      options: { env: 'payments' },
      prompt: '',
    });
  });
});
