import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes, verify as verifySignature, type KeyObject } from 'node:crypto';
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
 * - GET /repos/{owner}/{repo}/pulls/{number}: the pull request with `head` { ref, sha, repo } and
 *   `base` (a head in another repository, a fork, is read from that repository's bare one);
 * - POST /repos/{owner}/{repo}/pulls with `head: OWNER:BRANCH` of another repository of the
 *   network: the branch is looked up in OWNER's repository;
 * - GET /repos/{owner}/{repo}/collaborators/{username}/permission: { permission, role_name,
 *   user } from `permissions` (admin, maintain, write, triage, read; `permission` is the coarse
 *   admin/write/read), 404 for a user who is not a collaborator;
 * - GET /repos/{owner}/{repo}/compare/BASE...HEAD: `merge_base_commit`, `total_commits` and the
 *   `files` (filename, status, previous_filename of a rename; at most 300) from merge base to
 *   HEAD, read from the real bare repository (404 when either is not there);
 * - POST /repos/{owner}/{repo}/issues/comments/{id}/reactions and
 *   /repos/{owner}/{repo}/pulls/comments/{id}/reactions: `content` one of GitHub's eight, 201;
 * - POST /repos/{owner}/{repo}/issues/{number}/comments { body }: 201 with id and html_url;
 * - POST /repos/{owner}/{repo}/pulls/{number}/comments/{id}/replies { body }: 201;
 * - POST /repos/{owner}/{repo}/pulls/{number}/reviews { event, body }: event APPROVE,
 *   REQUEST_CHANGES or COMMENT (a body required for the last two), 200;
 * - as a GitHub App (`app`): GET /repos/{owner}/{repo}/installation and
 *   POST /app/installations/{id}/access_tokens need `Authorization: Bearer <JWT>`, an RS256 JWT
 *   whose signature checks with the App's public key, `iss` the App's id, `iat` in the past and
 *   `exp` at most 10 minutes after it (else 401); an access token is made for the installation's
 *   repositories (or those of `repositories` in the body) and is accepted for them only (404 for
 *   another, as GitHub hides what a token cannot see).
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
  /** `OWNER/REPO` of the head when it is another repository of the network (a fork). */
  headRepo?: string;
}

/** A GitHub App the fake knows: its id, public key, and installations by repository. */
export interface FakeGitHubApp {
  id: string;
  publicKey: KeyObject | string;
  /** `owner/repo` → installation id. */
  installations: Record<string, number>;
}

/** An installation access token the fake made. */
export interface IssuedToken {
  token: string;
  installation: number;
  repositories: string[];
}

export interface FakeGitHubOptions {
  token: string;
  /** `owner/repo` → the bare repository standing for it (branches are checked there). */
  repositories: Record<string, string>;
  /** The path the API is served under: '' (api.github.com) or `/api/v3` (GitHub Enterprise). */
  basePath?: string;
  /** `owner/repo` → login → role (admin, maintain, write, triage, read). */
  permissions?: Record<string, Record<string, string>>;
  app?: FakeGitHubApp;
}

/** What Berth wrote on the fake: comments, replies, reactions, reviews. */
export interface WrittenComment {
  repository: string;
  issue: number;
  body: string;
}

const SUPPORTED_VERSIONS = ['2022-11-28', '2026-03-10'];

export class FakeGitHub {
  readonly requests: RecordedRequest[] = [];
  readonly pulls: FakePull[] = [];
  readonly comments: WrittenComment[] = [];
  readonly replies: Array<WrittenComment & { inReplyTo: number }> = [];
  readonly reactions: Array<{
    repository: string;
    kind: 'issue' | 'review';
    comment: number;
    content: string;
  }> = [];
  readonly reviews: Array<WrittenComment & { event: string }> = [];
  readonly issuedTokens: IssuedToken[] = [];
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
    const url0 = new URL(req.url ?? '/', 'http://fake');
    const path0 = url0.pathname.slice((this.options.basePath ?? '').length);
    const credential = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const appRoute =
      /^\/app\/installations\/\d+\/access_tokens$/.test(path0) ||
      /^\/repos\/[^/]+\/[^/]+\/installation$/.test(path0);
    const issued = this.issuedTokens.find((t) => t.token === credential);
    const repoOfPath = /^\/repos\/([^/]+)\/([^/]+)/.exec(path0);
    if (appRoute) {
      const refusal = this.checkJwt(credential);
      if (refusal !== undefined)
        return {
          status: 401,
          payload: { message: refusal, documentation_url: docs, status: '401' },
        };
    } else if (issued !== undefined) {
      // An installation token sees its repositories only (GitHub answers 404 for the others).
      const repository = repoOfPath ? `${repoOfPath[1]}/${repoOfPath[2]}`.toLowerCase() : '';
      if (!issued.repositories.includes(repository))
        return { status: 404, payload: { message: 'Not Found', documentation_url: docs } };
    } else if (
      req.headers.authorization !== `Bearer ${this.token}` &&
      req.headers.authorization !== `token ${this.token}`
    ) {
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
    if (inApi) {
      const more = this.answerMore(req.method ?? '', url.pathname.slice(base.length), body, raw);
      if (more !== undefined) return more;
    }
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
        const value = body[field];
        if (typeof value !== 'string') {
          errors.push({ resource: 'PullRequest', field, code: 'missing_field' });
          continue;
        }
        // `OWNER:BRANCH`: a branch of OWNER's repository of the same network.
        const other = field === 'head' ? /^([^:]+):(.+)$/.exec(value) : null;
        const where = other ? this.repositoryOf(other[1] ?? '', repo) : bare;
        if (where === undefined || !this.branchExists(where, other ? (other[2] ?? '') : value))
          errors.push({ resource: 'PullRequest', field, code: 'invalid' });
      }
      if (typeof body.title !== 'string' || body.title === '')
        errors.push({ resource: 'PullRequest', field: 'title', code: 'missing_field' });
      if (errors.length > 0) return invalid(errors);
      const head = String(body.head).replace(/^[^:]+:/, '');
      const headOwner = /^([^:]+):/.exec(String(body.head))?.[1];
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
        ...(headOwner !== undefined && headOwner.toLowerCase() !== owner.toLowerCase()
          ? { headRepo: `${headOwner}/${repo}` }
          : {}),
      };
      this.pulls.push(pull);
      return { status: 201, payload: this.view(pull) };
    }
    if (req.method === 'GET' && number !== undefined) {
      const pull = this.pulls.find(
        (p) => p.owner === owner && p.repo === repo && p.number === Number(number),
      );
      if (!pull) return { status: 404, payload: { message: 'Not Found', documentation_url: docs } };
      return { status: 200, payload: this.view(pull) };
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
    const headRepo = p.headRepo ?? `${p.owner}/${p.repo}`;
    const [headOwner = '', headName = ''] = headRepo.split('/');
    const headBare = this.options.repositories[headRepo];
    return {
      number: p.number,
      html_url: `https://github.example/${p.owner}/${p.repo}/pull/${p.number}`,
      state: p.state,
      title: p.title,
      body: p.body,
      draft: p.draft,
      head: {
        ref: p.head,
        label: `${headOwner}:${p.head}`,
        sha: headBare ? this.branchSha(headBare, p.head) : '0'.repeat(40),
        repo: { full_name: headRepo, name: headName, owner: { login: headOwner } },
      },
      base: {
        ref: p.base,
        repo: { full_name: `${p.owner}/${p.repo}`, name: p.repo, owner: { login: p.owner } },
      },
    };
  }

  /** A pull request someone opened (not Berth): head `branch` of `headRepo` (default: the base). */
  addPull(pull: {
    owner: string;
    repo: string;
    head: string;
    base: string;
    title: string;
    headRepo?: string;
  }): number {
    const number = this.pulls.length + 1;
    this.pulls.push({ ...pull, number, body: '', draft: false, state: 'open' });
    return number;
  }

  /** The bare repository of `owner`'s repository in the network of `repo` (same name). */
  private repositoryOf(owner: string, repo: string): string | undefined {
    const key = Object.keys(this.options.repositories).find(
      (k) => k.toLowerCase() === `${owner}/${repo}`.toLowerCase(),
    );
    return key === undefined ? undefined : this.options.repositories[key];
  }

  private branchSha(bare: string, branch: string): string {
    try {
      return execFileSync('git', ['-C', bare, 'rev-parse', `refs/heads/${branch}`], {
        encoding: 'utf8',
      }).trim();
    } catch {
      return '0'.repeat(40);
    }
  }

  /** Why a JWT is refused (undefined: it is the App's, signed, within its time). */
  private checkJwt(jwt: string | undefined): string | undefined {
    const app = this.options.app;
    if (app === undefined) return 'no GitHub App is set up on the fake';
    const [header = '', payload = '', signature = ''] = (jwt ?? '').split('.');
    if (!header || !payload || !signature) return 'A JSON web token could not be decoded';
    let head: { alg?: unknown };
    let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
    try {
      head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof head;
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return 'A JSON web token could not be decoded';
    }
    if (head.alg !== 'RS256') return "'alg' must be RS256";
    const signed = verifySignature(
      'RSA-SHA256',
      Buffer.from(`${header}.${payload}`),
      app.publicKey,
      Buffer.from(signature, 'base64url'),
    );
    if (!signed) return 'A JSON web token could not be decoded';
    if (String(claims.iss) !== app.id) return "'Issuer' claim ('iss') must be the App's id";
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.iat !== 'number' || claims.iat > now + 60)
      return "'Issued at' claim ('iat') must be an Integer representing a time in the past";
    if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp - claims.iat > 660)
      return "'Expiration time' claim ('exp') is too far in the future";
    return undefined;
  }

  private answerMore(
    method: string,
    path: string,
    body: Record<string, unknown> | undefined,
    raw: string,
  ): { status: number; payload: unknown } | undefined {
    const docs = 'https://docs.github.example/rest';
    const notFound = { status: 404, payload: { message: 'Not Found', documentation_url: docs } };
    const invalid = (errors: unknown[]) => ({
      status: 422,
      payload: { message: 'Validation Failed', errors, documentation_url: docs, status: '422' },
    });
    const app = this.options.app;
    let m = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path);
    if (m && method === 'POST') {
      const installation = Number(m[1]);
      const all = Object.entries(app?.installations ?? {})
        .filter(([, id]) => id === installation)
        .map(([r]) => r.toLowerCase());
      if (all.length === 0) return notFound;
      const names = Array.isArray(body?.repositories)
        ? (body.repositories as unknown[])
        : undefined;
      const repositories = names
        ? all.filter((r) =>
            names.some((n) => typeof n === 'string' && r.endsWith(`/${n.toLowerCase()}`)),
          )
        : all;
      if (names && repositories.length !== names.length)
        return invalid([{ resource: 'Installation', field: 'repositories', code: 'invalid' }]);
      const token = `ghs_${randomBytes(18).toString('hex')}`;
      this.issuedTokens.push({ token, installation, repositories });
      return {
        status: 201,
        payload: {
          token,
          expires_at: new Date(Date.now() + 3600_000).toISOString(),
          permissions: { contents: 'write', pull_requests: 'write', issues: 'write' },
          repository_selection: 'selected',
          repositories: repositories.map((r) => ({ full_name: r, name: r.split('/')[1] })),
        },
      };
    }
    m = /^\/repos\/([^/]+)\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return undefined;
    const owner = m[1] ?? '';
    const repo = m[2] ?? '';
    const rest = m[3] ?? '';
    const repository = `${owner}/${repo}`;
    if (this.repositoryOf(owner, repo) === undefined) return undefined;
    if (rest === 'installation' && method === 'GET') {
      const id = Object.entries(app?.installations ?? {}).find(
        ([r]) => r.toLowerCase() === repository.toLowerCase(),
      )?.[1];
      return id === undefined
        ? notFound
        : { status: 200, payload: { id, app_id: Number(app?.id), account: { login: owner } } };
    }
    let r = /^compare\/(.+)\.\.\.(.+)$/.exec(rest);
    if (r && method === 'GET') {
      const bare = this.repositoryOf(owner, repo) ?? '';
      const git = (...args: string[]) =>
        execFileSync('git', ['-C', bare, ...args], { encoding: 'utf8' }).trim();
      try {
        const [base, head] = [decodeURIComponent(r[1] ?? ''), decodeURIComponent(r[2] ?? '')];
        const mergeBase = git('merge-base', `${base}^{commit}`, `${head}^{commit}`);
        const files = git('diff', '--name-status', '-M', '-z', mergeBase, head)
          .split('\0')
          .filter((f) => f !== '');
        const listed: Record<string, string>[] = [];
        for (let i = 0; i < files.length;) {
          const status = files[i++] ?? '';
          if (status.startsWith('R') || status.startsWith('C')) {
            const from = files[i++] ?? '';
            listed.push({ filename: files[i++] ?? '', previous_filename: from, status: 'renamed' });
          } else {
            const kind: Record<string, string> = { A: 'added', D: 'removed' };
            listed.push({ filename: files[i++] ?? '', status: kind[status] ?? 'modified' });
          }
        }
        return {
          status: 200,
          payload: {
            merge_base_commit: { sha: mergeBase },
            total_commits: Number(git('rev-list', '--count', `${mergeBase}..${head}`)),
            files: listed.slice(0, 300),
          },
        };
      } catch {
        return notFound;
      }
    }
    r = /^collaborators\/([^/]+)\/permission$/.exec(rest);
    if (r && method === 'GET') {
      const login = decodeURIComponent(r[1] ?? '');
      const table = this.options.permissions?.[repository] ?? {};
      const role = Object.entries(table).find(
        ([l]) => l.toLowerCase() === login.toLowerCase(),
      )?.[1];
      if (role === undefined)
        return {
          status: 404,
          payload: { message: `${login} is not a user`, documentation_url: docs },
        };
      const coarse =
        role === 'admin' ? 'admin' : role === 'maintain' || role === 'write' ? 'write' : 'read';
      return {
        status: 200,
        payload: { permission: coarse, role_name: role, user: { login } },
      };
    }
    r = /^(issues|pulls)\/comments\/(\d+)\/reactions$/.exec(rest);
    if (r && method === 'POST') {
      const contents = ['+1', '-1', 'laugh', 'confused', 'heart', 'hooray', 'rocket', 'eyes'];
      if (typeof body?.content !== 'string' || !contents.includes(body.content))
        return invalid([{ resource: 'Reaction', field: 'content', code: 'invalid' }]);
      this.reactions.push({
        repository,
        kind: r[1] === 'issues' ? 'issue' : 'review',
        comment: Number(r[2]),
        content: body.content,
      });
      return { status: 201, payload: { id: this.reactions.length, content: body.content } };
    }
    r = /^issues\/(\d+)\/comments$/.exec(rest);
    if (r && method === 'POST') {
      if (typeof body?.body !== 'string' || body.body === '')
        return invalid([{ resource: 'IssueComment', field: 'body', code: 'missing_field' }]);
      if (body.body.length > 65_536)
        return invalid([
          {
            resource: 'IssueComment',
            field: 'body',
            code: 'custom',
            message: 'body is too long (maximum is 65536 characters)',
          },
        ]);
      this.comments.push({ repository, issue: Number(r[1]), body: body.body });
      return {
        status: 201,
        payload: {
          id: 9000 + this.comments.length,
          html_url: `https://github.example/${repository}/issues/${r[1]}#issuecomment-${9000 + this.comments.length}`,
          body: body.body,
        },
      };
    }
    r = /^pulls\/(\d+)\/comments\/(\d+)\/replies$/.exec(rest);
    if (r && method === 'POST') {
      if (typeof body?.body !== 'string' || body.body === '')
        return invalid([
          { resource: 'PullRequestReviewComment', field: 'body', code: 'missing_field' },
        ]);
      this.replies.push({
        repository,
        issue: Number(r[1]),
        inReplyTo: Number(r[2]),
        body: body.body,
      });
      return { status: 201, payload: { id: 7000 + this.replies.length, body: body.body } };
    }
    r = /^pulls\/(\d+)\/reviews$/.exec(rest);
    if (r && method === 'POST') {
      const event = body?.event;
      if (event !== 'APPROVE' && event !== 'REQUEST_CHANGES' && event !== 'COMMENT')
        return invalid([{ resource: 'PullRequestReview', field: 'event', code: 'invalid' }]);
      if (event !== 'APPROVE' && (typeof body?.body !== 'string' || body.body === ''))
        return invalid([{ resource: 'PullRequestReview', field: 'body', code: 'missing_field' }]);
      this.reviews.push({
        repository,
        issue: Number(r[1]),
        event,
        body: typeof body?.body === 'string' ? body.body : '',
      });
      return { status: 200, payload: { id: 5000 + this.reviews.length, state: 'COMMENTED' } };
    }
    void raw;
    return undefined;
  }
}

/**
 * A webhook delivery as GitHub sends it: JSON body, `X-GitHub-Event`, `X-GitHub-Delivery`, and
 * `X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body)` in hex.
 */
export function signedDelivery(
  url: string,
  secret: string,
  event: string,
  payload: unknown,
  delivery: string,
): Request {
  const body = JSON.stringify(payload);
  return new Request(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/berth-test',
      'x-github-event': event,
      'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
    body,
  });
}
