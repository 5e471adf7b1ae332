import { Webhooks } from '@octokit/webhooks';
import { BerthError, toBerthError } from '../../errors/berth-error.js';
import { githubRepositoryAllowed } from '../../git/github-repository-patterns.js';
import type { Store } from '../../ports/store.js';
import type { TaskService } from '../../services/task-service.js';
import { readText } from '../../server/request-body.js';
import { parseComment } from './comment-grammar.js';
import { checkCommenterPermission } from './commenter-permission.js';
import { CommentTask, type PullHead } from './comment-task.js';
import type { GitHubAuth, GitHubIntegrationSettings } from './github-auth.js';
import { codeBlock } from './reply-text.js';
import { routeRepository } from './repository-routing.js';
import { readCommentEvent, type CommentEvent } from './webhook-events.js';

/**
 * `POST /v1/integrations/github/webhook`: GitHub's deliveries, and what each comment starts.
 *
 * Threat model: the route has no Berth token (GitHub cannot hold one); what proves a delivery
 * came from GitHub is `X-Hub-Signature-256`, the HMAC-SHA256 of the exact body with
 * `BERTH_GITHUB_WEBHOOK_SECRET`, checked by `@octokit/webhooks` in constant time before anything
 * else is read; a missing or wrong one is 401 and nothing runs. A captured delivery replayed (or
 * GitHub's own redelivery) is taken once by its `X-GitHub-Delivery` id, kept in the store 30
 * days; since that id is not signed, what the signed body names (event, action, repository,
 * comment id: `commentKey`) is taken once too and kept for good, so a body sent again under a
 * new id starts nothing. A
 * signed delivery is still only GitHub relaying what anyone wrote: the comment is parsed by the
 * exact grammar (comment-grammar.ts), the commenter's permission is asked of the API
 * (commenter-permission.ts) before anything is written back, a locked or closed issue starts
 * nothing, and the repository must be named by an environment (repository-routing.ts). The
 * answer is sent before the work (GitHub waits 10 seconds); each accepted comment then runs in
 * the background and ends with a reply (comment-task.ts).
 */

export interface GitHubWebhookLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface GitHubWebhookDeps {
  settings: GitHubIntegrationSettings;
  auth: GitHubAuth;
  store: Store;
  tasks: TaskService;
  waitForTask: (taskId: string) => Promise<unknown>;
  logger: GitHubWebhookLogger;
  now?: () => Date;
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8' },
  });

/** GitHub redelivers for a few days; ids older than this are dropped now and then. */
/**
 * What a delivery's signed body names: the event, its action (always `created` for what Berth
 * acts on), the repository and the comment's id (issue and review comments have separate ids).
 * Never a valid `X-GitHub-Delivery` (those have no `:`), so the two kinds of key share a table.
 */
export function commentKey(event: string, comment: CommentEvent): string {
  return `comment:${event}:created:${comment.repository.fullName.toLowerCase()}:${comment.commentId}`;
}

const DELIVERY_KEEP_MS = 30 * 24 * 3600_000;

export class GitHubWebhook {
  private readonly webhooks: Webhooks;
  private readonly inFlight = new Set<Promise<void>>();
  private lastPrune = 0;

  constructor(private readonly deps: GitHubWebhookDeps) {
    this.webhooks = new Webhooks({ secret: deps.settings.webhookSecret });
  }

  /** Resolves once every comment taken so far has been handled (tests, a graceful stop). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  async receive(request: Request): Promise<Response> {
    const { logger } = this.deps;
    const signature = request.headers.get('x-hub-signature-256') ?? '';
    const name = request.headers.get('x-github-event') ?? '';
    const delivery = request.headers.get('x-github-delivery') ?? '';
    const body = await readText(request);
    const valid =
      /^sha256=[0-9a-f]{64}$/.test(signature) &&
      (await this.webhooks.verify(body, signature).catch(() => false));
    if (!valid) {
      logger.warn(
        { event: name, delivery },
        'github webhook refused: missing or wrong X-Hub-Signature-256',
      );
      throw new BerthError(
        'unauthorized',
        'the delivery is not signed with the webhook secret (X-Hub-Signature-256)',
      );
    }
    if (name === 'ping') return json(200, { ok: true });
    let payload: unknown;
    try {
      payload = JSON.parse(body);
    } catch {
      throw new BerthError(
        'invalid_input',
        'the delivery is not JSON (set the content type to application/json)',
      );
    }
    const read = readCommentEvent(name, payload);
    if (read.handled === false) {
      logger.info({ event: name, delivery, why: read.why }, 'github webhook: not handled');
      return new Response(null, { status: 204 });
    }
    if (read.handled === 'invalid') throw new BerthError('invalid_input', read.why);
    if (!/^[A-Za-z0-9-]{1,100}$/.test(delivery))
      throw new BerthError('invalid_input', 'X-GitHub-Delivery is missing or malformed');
    const now = (this.deps.now ?? (() => new Date()))();
    if (!(await this.deps.store.claimGitHubDelivery(delivery, name, now.toISOString()))) {
      logger.info({ event: name, delivery }, 'github webhook: delivery already taken (redelivery)');
      return json(200, { duplicate: true });
    }
    // The delivery id is not signed: the same signed body under a new id is the same comment.
    // What the body names is taken once too, and kept (github-tables.ts never prunes it).
    const comment = commentKey(name, read.event);
    if (!(await this.deps.store.claimGitHubDelivery(comment, name, now.toISOString()))) {
      logger.info(
        { event: name, delivery, comment },
        'github webhook: comment already taken (the same body under another delivery id)',
      );
      return json(200, { duplicate: true });
    }
    this.prune(now);
    const work = this.handle(read.event, delivery).catch((error: unknown) => {
      logger.warn({ delivery, err: toBerthError(error).message }, 'github comment: failed');
    });
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
    return json(202, { accepted: true });
  }

  private prune(now: Date): void {
    if (now.getTime() - this.lastPrune < 3600_000) return;
    this.lastPrune = now.getTime();
    void this.deps.store
      .pruneGitHubDeliveries(new Date(now.getTime() - DELIVERY_KEEP_MS).toISOString())
      .catch(() => undefined);
  }

  private async handle(event: CommentEvent, delivery: string): Promise<void> {
    const { settings, logger, auth, store } = this.deps;
    const where = {
      delivery,
      repository: event.repository.fullName,
      number: event.number,
      comment: event.commentId,
      author: event.author.login,
    };
    if (
      event.author.type === 'Bot' ||
      event.author.login.toLowerCase() === settings.mention.toLowerCase()
    ) {
      logger.info(where, 'github comment ignored: written by a bot');
      return;
    }
    const request = parseComment(event.body, {
      mention: settings.mention,
      maxAttempts: settings.maxAttempts,
    });
    if (request.kind === 'none') {
      logger.info(where, `github comment ignored: no line starts with @${settings.mention}`);
      return;
    }
    if (event.locked || event.state !== 'open') {
      logger.info(
        { ...where, state: event.state, locked: event.locked },
        `github comment ignored: the ${event.source === 'issue' ? 'issue' : 'pull request'} is ${event.locked ? 'locked' : event.state}; nothing runs`,
      );
      return;
    }
    const repository = { owner: event.repository.owner, repo: event.repository.repo };
    // The server's token acts only on the repositories BERTH_GITHUB_REPOSITORIES lists (an App's
    // installations say themselves where it may act).
    if (auth.kind === 'token' && !githubRepositoryAllowed(repository, settings.repositories)) {
      logger.warn(
        where,
        `github comment ignored: BERTH_GITHUB_REPOSITORIES does not list ${event.repository.fullName}; nothing runs`,
      );
      return;
    }
    const route = await routeRepository(
      store,
      event.repository.fullName,
      request.kind === 'invalid' ? undefined : request.options.environment,
    );
    const least = route.ok ? (route.environment.spec.triggers?.github?.allow ?? 'write') : 'write';
    const octokit = await auth.octokitFor(repository, event.installationId);
    const verdict = await checkCommenterPermission(octokit, repository, event.author.login, least);
    if (!verdict.allowed) {
      logger.warn(
        { ...where, permission: verdict.permission, needed: least },
        `github comment refused: ${verdict.reason}; nothing runs`,
      );
      return;
    }
    const caller = {
      tokenId: 'github',
      tokenName: `github:${event.author.login}`,
      admin: true,
    };
    const task = new CommentTask(
      {
        tasks: this.deps.tasks,
        waitForTask: this.deps.waitForTask,
        pushCredentials: () =>
          auth.kind === 'app'
            ? auth.gitCredentials(repository, event.installationId)
            : Promise.resolve(undefined),
        publicUrl: settings.publicUrl,
      },
      octokit,
      event,
      caller,
    );
    if (!route.ok) {
      logger.info({ ...where, why: route.reason }, 'github comment: no environment');
      await task.reply(route.reason);
      return;
    }
    if (request.kind === 'invalid') {
      await task.reply(`Berth did not start a task: ${request.reason}.`);
      return;
    }
    if (request.kind === 'review' && event.source === 'issue') {
      await task.reply('Berth reviews pull requests only: `review` on an issue starts nothing.');
      return;
    }
    // Accepted: the eyes reaction on the comment.
    if (event.source === 'review_comment')
      await octokit.rest.reactions.createForPullRequestReviewComment({
        ...repository,
        comment_id: event.commentId,
        content: 'eyes',
      });
    else
      await octokit.rest.reactions.createForIssueComment({
        ...repository,
        comment_id: event.commentId,
        content: 'eyes',
      });
    let head: PullHead | undefined;
    if (event.source !== 'issue') {
      const pull = (await octokit.rest.pulls.get({ ...repository, pull_number: event.number }))
        .data;
      head = {
        ref: pull.head.ref,
        sha: pull.head.sha,
        repository: pull.head.repo?.full_name ?? null,
        base: pull.base.ref,
      };
    }
    logger.info(
      { ...where, environment: route.environment.spec.name, kind: request.kind },
      'github comment accepted',
    );
    try {
      await task.run(route.environment.spec.name, request, head);
    } catch (error) {
      await task
        .reply(`Berth stopped on an error:\n\n${codeBlock(toBerthError(error).message)}`)
        .catch(() => undefined);
      throw error;
    }
  }
}
