import { Octokit } from '@octokit/rest';
import { BerthError } from '../errors/berth-error.js';
import type { GitHubRepository } from './github-remote.js';

/**
 * Berth's GitHub REST client: octokit (`@octokit/rest`), with the headers GitHub documents:
 * `Accept: application/vnd.github+json`, `X-GitHub-Api-Version`, `Authorization: Bearer TOKEN`
 * (a token, or what an App's auth strategy gives), a User-Agent starting with `berth`, the API
 * base of `BERTH_GITHUB_API_URL` (GitHub Enterprise: `https://HOST/api/v3`). A refusal becomes a
 * `remote_error` carrying GitHub's own message and validation errors (`githubError`). The token
 * is held by the orchestrator only and never appears in a message.
 */

export const GITHUB_API_VERSION = '2022-11-28';

export interface PullRequest {
  number: number;
  url: string;
}

export interface PullRequestFields {
  title: string;
  body: string;
}

export interface OctokitSettings {
  apiUrl: string;
  /** A token sent as `Authorization: Bearer`; absent with `authStrategy`. */
  token?: string | undefined;
  /** An octokit auth strategy (`createAppAuth`) and its options, instead of a token. */
  authStrategy?: unknown;
  auth?: unknown;
  userAgent?: string;
}

/** An octokit for GitHub's REST API with Berth's headers (see above). */
export function createOctokit(settings: OctokitSettings): Octokit {
  const octokit = new Octokit({
    baseUrl: settings.apiUrl,
    userAgent: settings.userAgent ?? 'berth',
    // Berth reports a failure itself (githubError), once, with GitHub's message.
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
    },
    ...(settings.authStrategy !== undefined
      ? { authStrategy: settings.authStrategy, auth: settings.auth }
      : {}),
  });
  const token = settings.token;
  octokit.hook.before('request', (options) => {
    options.headers.accept = 'application/vnd.github+json';
    options.headers['x-github-api-version'] = GITHUB_API_VERSION;
    if (token !== undefined) options.headers.authorization = `Bearer ${token}`;
  });
  return octokit;
}

/** A failed octokit call as Berth's error (GitHub's message; never a header or a token). */
export function githubError(error: unknown, apiUrl: string): BerthError {
  if (error instanceof BerthError) return error;
  // octokit's RequestError: GitHub answered (a status and the response) or could not be asked.
  const answered = error as { status?: unknown; response?: { data?: unknown } } | undefined;
  if (typeof answered?.status === 'number' && answered.response !== undefined) {
    return new BerthError(
      'remote_error',
      `GitHub answered ${answered.status}: ${githubMessage(answered.response.data, '')}`,
      { status: answered.status },
      { cause: error },
    );
  }
  const cause = (error as { cause?: { message?: unknown } } | undefined)?.cause;
  const reason =
    typeof cause?.message === 'string' ? cause.message : (error as Error | undefined)?.message;
  return new BerthError(
    'remote_error',
    `cannot reach the GitHub API at ${apiUrl}: ${reason ?? 'unknown error'}`,
    {},
    { cause: error },
  );
}

/** The few pulls calls `berth task pr` needs (list by head, create, update). */
export class GitHubClient {
  private readonly octokit: Octokit;

  constructor(
    private readonly apiUrl: string,
    auth: string | Octokit,
    userAgent = 'berth',
  ) {
    this.octokit =
      typeof auth === 'string' ? createOctokit({ apiUrl, token: auth, userAgent }) : auth;
  }

  /** The open pull request whose head is `headOwner:branch` (default: the repository's owner). */
  async findOpenPull(
    repo: GitHubRepository,
    branch: string,
    signal?: AbortSignal,
    headOwner = repo.owner,
  ): Promise<PullRequest | undefined> {
    const list = await this.call(() =>
      this.octokit.rest.pulls.list({
        owner: repo.owner,
        repo: repo.repo,
        head: `${headOwner}:${branch}`,
        state: 'open',
        per_page: 1,
        request: { signal: signal ?? AbortSignal.timeout(30_000) },
      }),
    );
    const first = Array.isArray(list) ? list[0] : undefined;
    return first ? { number: first.number, url: first.html_url } : undefined;
  }

  /** `head` is a branch of `repo`, or `OWNER:BRANCH` of another repository of its network. */
  async createPull(
    repo: GitHubRepository,
    fields: PullRequestFields & { head: string; base: string; draft: boolean },
    signal?: AbortSignal,
  ): Promise<PullRequest> {
    const created = await this.call(() =>
      this.octokit.rest.pulls.create({
        owner: repo.owner,
        repo: repo.repo,
        ...fields,
        request: { signal: signal ?? AbortSignal.timeout(30_000) },
      }),
    );
    return { number: created.number, url: created.html_url };
  }

  async updatePull(
    repo: GitHubRepository,
    number: number,
    fields: PullRequestFields,
    signal?: AbortSignal,
  ): Promise<PullRequest> {
    const updated = await this.call(() =>
      this.octokit.rest.pulls.update({
        owner: repo.owner,
        repo: repo.repo,
        pull_number: number,
        ...fields,
        request: { signal: signal ?? AbortSignal.timeout(30_000) },
      }),
    );
    return { number: updated.number, url: updated.html_url };
  }

  private async call<T>(request: () => Promise<{ data: T }>): Promise<T> {
    try {
      return (await request()).data;
    } catch (error) {
      throw githubError(error, this.apiUrl);
    }
  }
}

/** GitHub's error body: `{ message, errors: [{ message } | { resource, field, code }], documentation_url }`. */
export function githubMessage(parsed: unknown, text: string): string {
  const body = parsed as { message?: unknown; errors?: unknown } | undefined;
  const message =
    typeof body?.message === 'string'
      ? body.message
      : (typeof parsed === 'string' ? parsed : text).slice(0, 300) || 'no message';
  const details = Array.isArray(body?.errors)
    ? body.errors
        .map((e: unknown) => {
          const item = e as {
            message?: unknown;
            resource?: unknown;
            field?: unknown;
            code?: unknown;
          };
          if (typeof item.message === 'string') return item.message;
          return [item.resource, item.field, item.code]
            .filter((x) => typeof x === 'string')
            .join(' ');
        })
        .filter((s: string) => s !== '')
    : [];
  return details.length > 0 ? `${message} (${details.join('; ')})` : message;
}
