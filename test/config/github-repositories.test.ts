import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { githubRepositoryAllowed } from '../../src/git/github-repository-patterns.js';
import { startTestServer } from '../api/api-server.js';

/** `BERTH_GITHUB_REPOSITORIES`: where the server's GitHub token may push (issue 21, 9). */

const base = { HOME: '/home/ada', BERTH_EXTRA_CA_FILES: '' };

describe('BERTH_GITHUB_REPOSITORIES', () => {
  it('is a comma-separated list of OWNER/NAME patterns; unset: empty (every repository)', () => {
    expect(loadConfig({}, base).githubRepositories).toEqual([]);
    expect(
      loadConfig({}, { ...base, BERTH_GITHUB_REPOSITORIES: 'acme/*, beta/app ,*/docs' })
        .githubRepositories,
    ).toEqual(['acme/*', 'beta/app', '*/docs']);
  });

  it.each(['acme', 'acme/a*', 'acme/app/x', 'https://github.com/acme/app', '*'])(
    'refuses the pattern %s, naming the variable',
    (pattern) => {
      let error: unknown;
      try {
        loadConfig({}, { ...base, BERTH_GITHUB_REPOSITORIES: pattern });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(BerthError);
      expect((error as BerthError).message).toContain('githubRepositories');
    },
  );

  it('matches whole segments, without case', () => {
    const repo = { owner: 'Acme', repo: 'App' };
    expect(githubRepositoryAllowed(repo, [])).toBe(true);
    expect(githubRepositoryAllowed(repo, ['acme/*'])).toBe(true);
    expect(githubRepositoryAllowed(repo, ['ACME/APP'])).toBe(true);
    expect(githubRepositoryAllowed(repo, ['*/app'])).toBe(true);
    expect(githubRepositoryAllowed(repo, ['acme/ap'])).toBe(false);
    expect(githubRepositoryAllowed(repo, ['acme-corp/*', 'beta/app'])).toBe(false);
  });

  it('the server warns at start when BERTH_GITHUB_TOKEN has no list', async () => {
    const warned = (logs: string[]) => logs.some((l) => l.includes('BERTH_GITHUB_REPOSITORIES'));
    const open = await startTestServer({ env: { BERTH_GITHUB_TOKEN: 'ghs-test' } });
    await open.close();
    expect(warned(open.logs)).toBe(true);
    const listed = await startTestServer({
      env: { BERTH_GITHUB_TOKEN: 'ghs-test', BERTH_GITHUB_REPOSITORIES: 'acme/*' },
    });
    await listed.close();
    expect(warned(listed.logs)).toBe(false);
    expect(JSON.stringify(open.logs)).not.toContain('ghs-test');
  });
});
