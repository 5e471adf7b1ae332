import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake GitHub REST API (the pulls endpoints Berth uses), as a real HTTP server on loopback.
 * It checks requests the way GitHub documents them and answers like GitHub:
 * - every path is under the API base (`basePath`: `/api/v3` for GitHub Enterprise), else 404;
 * - `Authorization: Bearer <token>` must carry the accepted token, else 401 "Bad credentials";
 * - a `User-Agent` is required (else 403, as GitHub answers), `Accept` must be
 *   `application/vnd.github+json` (else 415), and a request with a body must send it as
 *   `Content-Type: application/json` (else 415);
 * - `X-GitHub-Api-Version`, when sent, must be a supported version, else 400;
 * - POST /repos/{owner}/{repo}/pulls needs `head` and `base` (strings) and a `title`; `head`
 *   and `base` must be branches of the repository (looked up in a real bare repository), and
 *   one open pull request per head: else 422 "Validation Failed" with GitHub's `errors` items;
 *   201 with `number` and `html_url`;
 * - GET /repos/{owner}/{repo}/pulls?head=OWNER:BRANCH&state=open lists the open ones of a head;
 * - PATCH /repos/{owner}/{repo}/pulls/{number} updates title/body; 404 for an unknown number.
 * Every request is recorded (method, path, headers, JSON body) for tests to look at.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown> | undefined;
}

interface FakePull {
  number: number;
  owner: string;
  repo: string;
  title: string;
  body: string;
  head: string;
  base: string;
  draft: boolean;
  state: 'open' | 'closed';
}

export interface FakeGitHubOptions {
  token: string;
  /** `owner/repo` → the bare repository standing for it (branches are checked there). */
  repositories: Record<string, string>;
  /** The path the API is served under: '' (api.github.com) or `/api/v3` (GitHub Enterprise). */
  basePath?: string;
}

const SUPPORTED_VERSIONS = ['2022-11-28', '2026-03-10'];

export class FakeGitHub {
  readonly requests: RecordedRequest[] = [];
  readonly pulls: FakePull[] = [];
  /** The token accepted; change it to make Berth's token wrong. */
  token: string;
  /** Answers to give to the next requests instead of the normal ones (status, body). */
  readonly scripted: Array<{ status: number; body: unknown }> = [];
  private server: Server | undefined;
  url = '';

  constructor(private readonly options: FakeGitHubOptions) {
    this.token = options.token;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (raw += d));
      req.on('end', () => {
        let body: Record<string, unknown> | undefined;
        try {
          body = raw === '' ? undefined : (JSON.parse(raw) as Record<string, unknown>);
        } catch {
          body = undefined;
        }
        this.requests.push({
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body,
        });
        const { status, payload } = this.answer(req, body, raw);
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(payload));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${this.options.basePath ?? ''}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private answer(
    req: IncomingMessage,
    body: Record<string, unknown> | undefined,
    raw: string,
  ): { status: number; payload: unknown } {
    const docs = 'https://docs.github.example/rest';
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return {
        status: 401,
        payload: { message: 'Bad credentials', documentation_url: docs, status: '401' },
      };
    }
    const userAgent = req.headers['user-agent'];
    if (userAgent === undefined || userAgent === '') {
      return {
        status: 403,
        payload: {
          message:
            'Request forbidden by administrative rules. Please make sure your request has a User-Agent header',
          documentation_url: docs,
        },
      };
    }
    if (req.headers.accept !== 'application/vnd.github+json') {
      return {
        status: 415,
        payload: {
          message: `Unsupported 'Accept' header: ${String(req.headers.accept)}`,
          documentation_url: docs,
        },
      };
    }
    if (raw !== '' && !/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
      return {
        status: 415,
        payload: {
          message: `Unsupported 'Content-Type' header: ${String(req.headers['content-type'])}`,
          documentation_url: docs,
        },
      };
    }
    const version = req.headers['x-github-api-version'];
    if (version !== undefined && !SUPPORTED_VERSIONS.includes(String(version))) {
      return {
        status: 400,
        payload: {
          message: `API version ${String(version)} is not supported.`,
          documentation_url: docs,
        },
      };
    }
    const next = this.scripted.shift();
    if (next) return { status: next.status, payload: next.body };
    const url = new URL(req.url ?? '/', 'http://fake');
    const base = this.options.basePath ?? '';
    const inApi = url.pathname.startsWith(`${base}/`);
    const match = inApi
      ? /^\/repos\/([^/]+)\/([^/]+)\/pulls(?:\/(\d+))?$/.exec(url.pathname.slice(base.length))
      : null;
    const bare = match ? this.options.repositories[`${match[1]}/${match[2]}`] : undefined;
    if (!match || bare === undefined)
      return { status: 404, payload: { message: 'Not Found', documentation_url: docs } };
    const [, owner = '', repo = '', number] = match;
    const invalid = (errors: unknown[]) => ({
      status: 422,
      payload: { message: 'Validation Failed', errors, documentation_url: docs, status: '422' },
    });
    if (req.method === 'GET' && number === undefined) {
      const head = url.searchParams.get('head');
      const state = url.searchParams.get('state') ?? 'open';
      const list = this.pulls.filter(
        (p) =>
          p.owner === owner &&
          p.repo === repo &&
          (head === null || `${owner}:${p.head}` === head) &&
          (state === 'all' || p.state === state),
      );
      return { status: 200, payload: list.map((p) => this.view(p)) };
    }
    if (req.method === 'POST' && number === undefined) {
      if (body === undefined)
        return { status: 400, payload: { message: `Problems parsing JSON: ${raw.slice(0, 40)}` } };
      const errors: unknown[] = [];
      for (const field of ['head', 'base'] as const) {
        if (typeof body[field] !== 'string')
          errors.push({ resource: 'PullRequest', field, code: 'missing_field' });
        else if (!this.branchExists(bare, body[field]))
          errors.push({ resource: 'PullRequest', field, code: 'invalid' });
      }
      if (typeof body.title !== 'string' || body.title === '')
        errors.push({ resource: 'PullRequest', field: 'title', code: 'missing_field' });
      if (errors.length > 0) return invalid(errors);
      const head = String(body.head);
      if (
        this.pulls.some(
          (p) => p.owner === owner && p.repo === repo && p.head === head && p.state === 'open',
        )
      ) {
        return invalid([
          {
            resource: 'PullRequest',
            code: 'custom',
            message: `A pull request already exists for ${owner}:${head}.`,
          },
        ]);
      }
      const pull: FakePull = {
        number: this.pulls.length + 1,
        owner,
        repo,
        title: String(body.title),
        body: typeof body.body === 'string' ? body.body : '',
        head,
        base: String(body.base),
        draft: body.draft === true,
        state: 'open',
      };
      this.pulls.push(pull);
      return { status: 201, payload: this.view(pull) };
    }
    if (req.method === 'PATCH' && number !== undefined) {
      const pull = this.pulls.find(
        (p) => p.owner === owner && p.repo === repo && p.number === Number(number),
      );
      if (!pull) return { status: 404, payload: { message: 'Not Found', documentation_url: docs } };
      if (typeof body?.title === 'string') pull.title = body.title;
      if (typeof body?.body === 'string') pull.body = body.body;
      return { status: 200, payload: this.view(pull) };
    }
    return { status: 404, payload: { message: 'Not Found', documentation_url: docs } };
  }

  private branchExists(bare: string, branch: string): boolean {
    try {
      execFileSync(
        'git',
        ['-C', bare, 'rev-parse', '--verify', '--quiet', `refs/heads/${branch}`],
        { stdio: 'ignore' },
      );
      return true;
    } catch {
      return false;
    }
  }

  private view(p: FakePull): Record<string, unknown> {
    return {
      number: p.number,
      html_url: `https://github.example/${p.owner}/${p.repo}/pull/${p.number}`,
      state: p.state,
      title: p.title,
      body: p.body,
      draft: p.draft,
      head: { ref: p.head, label: `${p.owner}:${p.head}` },
      base: { ref: p.base },
    };
  }
}
