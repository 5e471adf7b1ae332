import { BerthError } from '../errors/berth-error.js';
import type { GitHubRepository } from './github-remote.js';

/**
 * The few calls of GitHub's REST API that `berth task pr` needs (pulls: list by head, create,
 * update), with the headers GitHub documents: `Accept: application/vnd.github+json`,
 * `X-GitHub-Api-Version`, `Authorization: Bearer TOKEN`, a User-Agent. A refusal becomes a
 * `remote_error` carrying GitHub's own message and validation errors. The token is held by the
 * orchestrator only and never appears in a message.
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

export class GitHubClient {
  constructor(
    private readonly apiUrl: string,
    private readonly token: string,
    private readonly userAgent = 'berth',
  ) {}

  /** The open pull request whose head is `owner:branch`, if any. */
  async findOpenPull(
    repo: GitHubRepository,
    branch: string,
    signal?: AbortSignal,
  ): Promise<PullRequest | undefined> {
    const query = new URLSearchParams({
      head: `${repo.owner}:${branch}`,
      state: 'open',
      per_page: '1',
    });
    const list = await this.call<Array<{ number: number; html_url: string }>>(
      'GET',
      `${this.repoPath(repo)}/pulls?${query.toString()}`,
      undefined,
      signal,
    );
    const first = Array.isArray(list) ? list[0] : undefined;
    return first ? { number: first.number, url: first.html_url } : undefined;
  }

  async createPull(
    repo: GitHubRepository,
    fields: PullRequestFields & { head: string; base: string; draft: boolean },
    signal?: AbortSignal,
  ): Promise<PullRequest> {
    const created = await this.call<{ number: number; html_url: string }>(
      'POST',
      `${this.repoPath(repo)}/pulls`,
      fields,
      signal,
    );
    return { number: created.number, url: created.html_url };
  }

  async updatePull(
    repo: GitHubRepository,
    number: number,
    fields: PullRequestFields,
    signal?: AbortSignal,
  ): Promise<PullRequest> {
    const updated = await this.call<{ number: number; html_url: string }>(
      'PATCH',
      `${this.repoPath(repo)}/pulls/${number}`,
      fields,
      signal,
    );
    return { number: updated.number, url: updated.html_url };
  }

  private repoPath(repo: GitHubRepository): string {
    return `/repos/${encodeURIComponent(repo.owner)}/${encodeURIComponent(repo.repo)}`;
  }

  private async call<T>(
    method: string,
    path: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<T> {
    const headers: Record<string, string> = {
      accept: 'application/vnd.github+json',
      authorization: `Bearer ${this.token}`,
      'x-github-api-version': GITHUB_API_VERSION,
      'user-agent': this.userAgent,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.apiUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: signal ?? AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new BerthError(
        'remote_error',
        `cannot reach the GitHub API at ${this.apiUrl}: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      throw new BerthError(
        'remote_error',
        `GitHub answered ${response.status}: ${githubMessage(parsed, text)}`,
        {
          status: response.status,
        },
      );
    }
    return parsed as T;
  }
}

/** GitHub's error body: `{ message, errors: [{ message } | { resource, field, code }], documentation_url }`. */
export function githubMessage(parsed: unknown, text: string): string {
  const body = parsed as { message?: unknown; errors?: unknown } | undefined;
  const message =
    typeof body?.message === 'string' ? body.message : text.slice(0, 300) || 'no message';
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
