import type { Octokit } from '@octokit/rest';
import type { LeasedAttempt } from '../../ports/store.js';
import type { Caller } from '../../services/caller.js';
import type { TaskDetail, TaskService, TaskSubmission } from '../../services/task-service.js';
import { toBerthError } from '../../errors/berth-error.js';
import type { GitCredentials } from '../../lifecycle/checkout.js';
import type { CommentRequest } from './comment-grammar.js';
import type { CommentEvent } from './webhook-events.js';
import {
  codeBlock,
  inertMarkdown,
  inlineCode,
  renderIssuePullBody,
  renderTaskReply,
  visibleText,
} from './reply-text.js';
import { forkCommitsRefusal, forkDiffRefusal } from './fork-github-guard.js';

/**
 * One accepted comment, from the task to the reply: which branch the task runs on, what it may
 * have (a fork's pull request: no secrets; a review: internet off), and what happens to the
 * picked attempt's diff.
 *
 * Threat model: the comment, the issue and the pull request are untrusted text and go into the
 * prompt only. A pull request whose head is in another repository (a fork) is the fork author's
 * code: its task runs without the environment's secrets (`withoutSecrets`), and Berth never
 * pushes to the fork; the change goes to `berth/<task-id>` of the environment's repository and a
 * pull request is opened into the fork's branch, which its author may merge or not; nothing at
 * all when the fork's commits or the diff touch `.github/`, since that branch runs this
 * repository's push workflows with its secrets (fork-github-guard.ts). A review is
 * read-only: the internet is off for its agent and nothing is pushed, whatever its diff. What
 * comes out of the sandbox is hostile and reaches GitHub through reply-text.ts only.
 */

export interface PullHead {
  ref: string;
  sha: string;
  /** `OWNER/REPO` of the head; null when the fork was deleted. */
  repository: string | null;
  base: string;
}

export interface CommentTaskDeps {
  tasks: TaskService;
  waitForTask: (taskId: string) => Promise<unknown>;
  /** Credentials for the push and the API when the environment has none (an App's token). */
  pushCredentials: () => Promise<GitCredentials | undefined>;
  publicUrl?: string | undefined;
}

type Accepted = Exclude<CommentRequest, { kind: 'none' } | { kind: 'invalid' }>;

const CONTEXT_MAX = 20_000;

/** What the agent is asked: the request with where it comes from (all of it untrusted). */
export function taskPrompt(event: CommentEvent, request: Accepted, head?: PullHead): string {
  const where =
    event.source === 'issue'
      ? `GitHub issue #${event.number} of ${event.repository.fullName}`
      : `GitHub pull request #${event.number} of ${event.repository.fullName} (branch ${head?.ref ?? '?'} into ${head?.base ?? '?'})`;
  const parts = [
    `This task comes from a comment by ${event.author.login} on ${where}.`,
    '',
    `Title: ${event.title}`,
  ];
  if (event.description.trim() !== '')
    parts.push('', 'Description:', event.description.slice(0, CONTEXT_MAX));
  if (event.review?.path !== undefined)
    parts.push(
      '',
      `The comment is on ${event.review.path}:`,
      (event.review.diffHunk ?? '').slice(0, CONTEXT_MAX),
    );
  if (request.kind === 'review') {
    parts.push(
      '',
      `Review the changes of this pull request: the commits from ${head?.base ?? 'the base branch'} to HEAD (git diff ${head?.base !== undefined ? `origin/${head.base}` : 'the merge base'}...HEAD, when that branch was fetched; else git log and git show). Do not change files: only your final message is used, posted as the review.`,
    );
    if (request.instructions !== '') parts.push('', 'Also:', request.instructions);
  } else {
    parts.push('', 'Request:', request.prompt);
  }
  return parts.join('\n');
}

/** The attempt whose result is used: verified first, then any that succeeded. */
export function chooseAttempt(detail: TaskDetail): LeasedAttempt | undefined {
  const succeeded = detail.attempts.filter((a) => a.phase === 'succeeded' && a.result !== null);
  return (
    succeeded.find((a) => a.result?.verification?.passed === true) ??
    succeeded.find((a) => a.result?.verification === undefined) ??
    succeeded[0]
  );
}

function verifyText(attempt: LeasedAttempt | undefined): string | undefined {
  const v = attempt?.result?.verification;
  if (v === undefined) return undefined;
  if (v.passed) return `passed (${inlineCode(v.command)})`;
  return `failed (${inlineCode(v.command)} ${v.timedOut ? 'timed out' : `exited ${v.exitCode}`})`;
}

/**
 * `Berth: REQUEST (#N)`: the request's first line with no `#123`, `GH-1` or `@name` left working
 * (a zero-width joiner breaks them), then the task.
 */
export function commitMessageFor(taskId: string, event: CommentEvent, request: Accepted): string {
  const first = request.kind === 'task' ? (request.prompt.split('\n')[0] ?? '') : 'review';
  const line = visibleText(first, 60)
    .replace(/#(?=[0-9])/g, '#\u2060')
    .replace(/\b(GH)-(?=[0-9])/gi, '$1-\u2060')
    .replace(/@(?=[A-Za-z0-9_-])/g, '@\u2060');
  const where =
    event.source === 'issue' ? `issue #${event.number}` : `pull request #${event.number}`;
  return `Berth: ${line}\n\nTask ${taskId}, asked by ${event.author.login} on ${where} of ${event.repository.fullName}.`;
}

export class CommentTask {
  constructor(
    private readonly deps: CommentTaskDeps,
    private readonly octokit: Octokit,
    private readonly event: CommentEvent,
    private readonly caller: Caller,
  ) {}

  /** Submits, waits, does what the request asks with the result, and replies. */
  async run(environment: string, request: Accepted, head?: PullHead): Promise<void> {
    const { event } = this;
    const fork =
      head !== undefined &&
      (head.repository === null ||
        head.repository.toLowerCase() !== event.repository.fullName.toLowerCase());
    const submission: TaskSubmission = {
      environment,
      prompt: taskPrompt(event, request, head),
      ...(request.options.attempts !== undefined ? { attempts: request.options.attempts } : {}),
      ...(head === undefined ? {} : fork ? { sha: head.sha } : { branch: head.ref }),
      ...(request.kind === 'review' ? { readOnly: true } : {}),
      ...(fork ? { withoutSecrets: true } : {}),
    };
    let detail: TaskDetail;
    try {
      detail = await this.deps.tasks.submit(this.caller, submission);
    } catch (error) {
      await this.reply(
        `Berth could not start a task:\n\n${codeBlock(toBerthError(error).message)}`,
      );
      return;
    }
    const taskId = detail.task.id;
    await this.deps.waitForTask(taskId);
    detail = await this.deps.tasks.get(this.caller, taskId);
    const chosen = chooseAttempt(detail);
    const taskUrl =
      this.deps.publicUrl !== undefined
        ? `${this.deps.publicUrl.replace(/\/+$/, '')}/tasks/${encodeURIComponent(taskId)}`
        : undefined;
    if (chosen?.result == null) {
      const first = detail.attempts.find((a) => a.error !== null);
      await this.reply(
        renderTaskReply({
          taskId,
          taskUrl,
          status: detail.task.status,
          outcome: `No attempt succeeded; nothing was pushed.${first?.error ? `\n\n${codeBlock(first.error.message)}` : ''}`,
        }),
      );
      return;
    }
    if (detail.attempts.length > 1)
      await this.deps.tasks.pick(this.caller, taskId, chosen.id).catch(() => undefined);
    const result = chosen.result;
    const verify = verifyText(chosen);

    if (request.kind === 'review') {
      await this.octokit.rest.pulls.createReview({
        owner: event.repository.owner,
        repo: event.repository.repo,
        pull_number: event.number,
        event: 'COMMENT',
        body: `Review by Berth (task ${inlineCode(taskId)}${taskUrl ? `, ${taskUrl}` : ''}):\n\n${inertMarkdown(result.message)}`,
      });
      return;
    }

    let outcome: string;
    if (result.diff.trim() === '') {
      outcome = 'The attempt changed nothing; nothing was pushed.';
    } else {
      outcome = await this.deliver(taskId, request, head, fork, result.message, result.diff);
    }
    await this.reply(
      renderTaskReply({
        taskId,
        taskUrl,
        status: detail.task.status,
        summary: result.message,
        verify,
        outcome,
      }),
    );
  }

  /** Pushes the diff the way the comment's place asks; says what was done, in Berth's words. */
  private async deliver(
    taskId: string,
    request: Accepted,
    head: PullHead | undefined,
    fork: boolean,
    summary: string,
    diff: string,
  ): Promise<string> {
    const { event } = this;
    const credentials = await this.deps.pushCredentials();
    // The commit message is Berth's: the prompt holds the issue's text, written by anyone, and a
    // closing keyword in a commit closes that issue when the commit reaches the default branch.
    const common = {
      ...(credentials ? { credentials } : {}),
      commitMessage: commitMessageFor(taskId, event, request),
    };
    try {
      if (head === undefined) {
        const done = await this.deps.tasks.pullRequest(this.caller, taskId, {
          ...common,
          title: `${visibleText(event.title, 200)} (#${event.number})`,
          body: renderIssuePullBody(event.number, taskId, summary),
        });
        return done.pullRequest
          ? `Opened pull request #${done.pullRequest.number} (${done.pullRequest.url}) from ${inlineCode(done.branch)}; it closes #${event.number} when merged.`
          : `Pushed ${inlineCode(done.branch)}; no pull request was opened.`;
      }
      if (!fork) {
        const done = await this.deps.tasks.pullRequest(this.caller, taskId, {
          ...common,
          pushTo: head.ref,
        });
        return `Pushed commit ${inlineCode(done.commit.slice(0, 12))} onto ${inlineCode(head.ref)}.`;
      }
      // The change goes to a branch of this repository, on top of the fork's commits, where
      // GitHub runs this repository's push workflows with its secrets (fork-github-guard.ts).
      const refusal =
        (await forkDiffRefusal(diff)) ??
        (await forkCommitsRefusal(
          this.octokit,
          { owner: event.repository.owner, repo: event.repository.repo },
          head.base,
          head.sha,
        ));
      if (refusal !== undefined)
        return `This pull request comes from a fork, and ${refusal}: Berth would push the change as a branch of ${event.repository.fullName}, where GitHub runs this repository's push workflows as that branch has them, with its secrets; nothing was pushed.`;
      const [owner = '', repo = ''] = (head.repository ?? '/').split('/');
      const firstLine = request.kind === 'task' ? (request.prompt.split('\n')[0] ?? '') : '';
      const done = await this.deps.tasks.pullRequest(this.caller, taskId, {
        ...common,
        title: `Berth: ${visibleText(firstLine, 60)} (for ${event.repository.fullName}#${event.number})`,
        body: `For ${event.repository.fullName}#${event.number}. Made by Berth: task ${inlineCode(taskId)}. The agent's summary:\n\n${codeBlock(summary)}`,
        ...(head.repository !== null
          ? { pullInto: { repository: { owner, repo }, base: head.ref } }
          : {}),
      });
      const pushed = `This pull request comes from a fork, and Berth does not push to forks: Berth pushed ${inlineCode(done.branch)} to ${event.repository.fullName} (the fork's commits and the change on top)`;
      return done.pullRequest
        ? `${pushed}, proposed to the fork's ${inlineCode(head.ref)} as pull request ${done.pullRequest.url}.`
        : `${pushed}.`;
    } catch (error) {
      return `The change was not delivered:\n\n${codeBlock(toBerthError(error).message)}`;
    }
  }

  async reply(body: string): Promise<void> {
    const { event } = this;
    if (event.source === 'review_comment') {
      await this.octokit.rest.pulls.createReplyForReviewComment({
        owner: event.repository.owner,
        repo: event.repository.repo,
        pull_number: event.number,
        comment_id: event.commentId,
        body,
      });
      return;
    }
    await this.octokit.rest.issues.createComment({
      owner: event.repository.owner,
      repo: event.repository.repo,
      issue_number: event.number,
      body,
    });
  }
}
