import { describe, expect, it } from 'vitest';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import {
  maskRepositoryUrl,
  repositoryUrlCredentialProblem,
} from '../../src/domain/environment/repository-url.js';
import { BerthError } from '../../src/errors/berth-error.js';

/** Credentials written into a repository URL: found in every form, never repeated, masked. */

const T = 'tok3n-VALUE';

describe('credentials in a repository URL', () => {
  it.each([
    [`https://bot:${T}@git.example/a.git`, 'https://***@git.example/a.git'],
    [`https://${T}@git.example/a.git`, 'https://***@git.example/a.git'],
    [`https://:${T}@git.example/a.git`, 'https://***@git.example/a.git'],
    [`https://bot:${T}@git.example:8443/a.git`, 'https://***@git.example:8443/a.git'],
    [`https://bot:${T}@git.example`, 'https://***@git.example'],
    [`https://a@b:${T}@git.example/a.git`, 'https://***@git.example/a.git'],
    [`HTTP://bot:${T}@git.example/a.git`, 'HTTP://***@git.example/a.git'],
    [`https://bot:${T}@git.example?x=1`, 'https://***@git.example?x=1'],
    [`git://bot:${T}@git.example/a.git`, 'git://***@git.example/a.git'],
    [`ssh://git:${T}@git.example/a.git`, 'ssh://git:***@git.example/a.git'],
    [`ssh://git:${T}@git.example:22/a.git`, 'ssh://git:***@git.example:22/a.git'],
    [`git:${T}@git.example:acme/a.git`, 'git:***@git.example:acme/a.git'],
  ])('refuses %s and masks it as %s', (url, masked) => {
    const problem = repositoryUrlCredentialProblem(url);
    expect(problem).toContain('repository.credentials');
    expect(problem).not.toContain(T);
    expect(maskRepositoryUrl(url)).toBe(masked);
    expect(maskRepositoryUrl(url)).not.toContain(T);
  });

  it.each([
    'https://git.example/acme/a.git',
    'https://git.example/acme/a@v2.git',
    'https://git.example/acme/a.git?ref=x@y',
    'https://git.example/acme/a.git#x@y',
    'ssh://git@git.example/acme/a.git',
    'ssh://git@git.example:2222/acme/a.git',
    'git@git.example:acme/a.git',
    'git@git.example:acme/a@b.git',
    '/srv/repos/a@b',
    'file:///srv/repos/a@b',
  ])('lets %s through unchanged', (url) => {
    expect(repositoryUrlCredentialProblem(url)).toBeUndefined();
    expect(maskRepositoryUrl(url)).toBe(url);
  });

  it('refuses at repository.url (or repository for the shorthand) in the schema, alone', () => {
    for (const [repository, path] of [
      [{ url: `https://bot:${T}@git.example/a.git` }, 'repository.url'],
      [`https://bot:${T}@git.example/a.git`, 'repository'],
    ] as const) {
      try {
        parseEnvironmentSpec({ name: 'p', repository });
        expect.unreachable('expected a refusal');
      } catch (error) {
        expect(error).toBeInstanceOf(BerthError);
        const issues = (error as BerthError).details.issues as { path: string; message: string }[];
        expect(issues.map((issue) => issue.path)).toEqual([path]);
        expect(issues[0]?.message).toContain('repository.credentials');
        expect((error as BerthError).message).not.toContain(T);
      }
    }
  });
});
