import { describe, expect, it } from 'vitest';
import { checkDockerfile } from '../../src/lifecycle/dockerfile-refusals.js';

/**
 * Review 5, finding 1: what a repository Dockerfile may not make the engine fetch (ADD <url>,
 * COPY/RUN --mount from an image, FROM through a variable or --platform), with line numbers,
 * through the parser's corners (case, continuations, comments, escape directive, JSON form,
 * ONBUILD). FROM images that are not stages are listed for the caller's local-engine check.
 */

const lines = (text: string) => checkDockerfile(text).refusals.map((r) => r.line);

describe('checkDockerfile', () => {
  it('refuses ADD with a URL source in any spelling', () => {
    const text = [
      'FROM berth/minimal',
      'ADD http://127.0.0.1:18555/a /a',
      'add  HTTPS://192.0.2.2/b /b',
      'Add --chown=1:1 git@example.invalid:x/y.git /c',
      'ADD ["ftp://172.17.0.1/x", "/d"]',
      'ADD \\',
      '  # a comment inside the continuation',
      '  http://127.0.0.1/e /e',
      'ADD local.txt /ok',
      'ARG U=http://127.0.0.1/f',
      'ADD $U /f',
      'ADD ${U} /g',
      'ADD x://y /h',
    ].join('\n');
    expect(lines(text)).toEqual([2, 3, 4, 5, 6, 11, 12, 13]);
    expect(checkDockerfile(text).refusals[0]?.message).toMatch(
      /ADD http:\/\/127\.0\.0\.1:18555\/a/,
    );
  });

  it('honours the escape directive for continuations', () => {
    const text = ['# escape=`', 'FROM scratch', 'ADD `', '  http://127.0.0.1/x /x'].join('\n');
    expect(lines(text)).toEqual([3]);
  });

  it('allows COPY --from and RUN --mount from earlier stages only', () => {
    const text = [
      'FROM berth/minimal AS Build',
      'FROM berth/minimal',
      'COPY --from=build /a /a',
      'COPY --from=0 /a /a',
      'COPY --from=1 /a /a',
      'COPY --from=127.0.0.1:18555/evil/img:1 /a /a',
      'RUN --mount=type=bind,from=alpine,target=/x true',
      'RUN --mount=type=bind,from=build,target=/x true',
      'COPY --from=$S /a /a',
      'ONBUILD ADD http://127.0.0.1/x /x',
      'onbuild COPY --from=evil /a /a',
      'ONBUILD COPY a /a',
    ].join('\n');
    expect(lines(text)).toEqual([5, 6, 7, 9, 10, 11]);
  });

  it('lists FROM images that are not stages and refuses variables and --platform', () => {
    const check = checkDockerfile(
      [
        'ARG IMG=127.0.0.1:18555/evil/img:1',
        'FROM scratch AS a',
        'FROM 127.0.0.1:18555/evil/img:1 AS b',
        'from A',
        'FROM ${IMG}',
        'FROM --platform=linux/arm64 berth/minimal',
      ].join('\n'),
    );
    expect(check.baseImages).toEqual([
      { line: 3, image: '127.0.0.1:18555/evil/img:1' },
      { line: 6, image: 'berth/minimal' },
    ]);
    expect(check.refusals.map((r) => r.line)).toEqual([5, 6]);
  });
});
