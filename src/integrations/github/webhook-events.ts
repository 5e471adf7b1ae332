import { z } from 'zod';

/**
 * The webhook deliveries Berth acts on, read into one shape (`CommentEvent`): a new comment on an
 * issue or a pull request's conversation (`issue_comment` / `created`) and a new review comment on
 * a pull request's diff (`pull_request_review_comment` / `created`). Every other event or action is
 * not handled (the receiver answers 204). Only the fields Berth uses are read, after the
 * signature was checked; the texts in them (titles, bodies) stay untrusted.
 */

const user = z.object({ login: z.string().min(1), type: z.string().optional() });
const repository = z.object({
  full_name: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/),
  name: z.string().min(1),
  owner: z.object({ login: z.string().min(1) }),
  default_branch: z.string().optional(),
});
const installation = z.object({ id: z.number().int() }).optional().nullable();
const comment = z.object({ id: z.number().int(), body: z.string().nullable(), user });
/** The issue or pull request a comment is on. */
const thread = z.object({
  number: z.number().int(),
  title: z.string(),
  body: z.string().nullable().optional(),
  state: z.string(),
  locked: z.boolean().optional(),
});

const issueComment = z.object({
  action: z.string(),
  issue: thread.extend({
    pull_request: z.object({}).passthrough().optional().nullable(),
  }),
  comment,
  repository,
  installation,
});

const reviewComment = z.object({
  action: z.string(),
  pull_request: thread,
  comment: comment.extend({
    path: z.string().optional(),
    diff_hunk: z.string().optional(),
  }),
  repository,
  installation,
});

export interface CommentEvent {
  /** `issue_comment` on an issue or on a pull request, or a review comment on a diff. */
  source: 'issue' | 'pull' | 'review_comment';
  repository: { owner: string; repo: string; fullName: string; defaultBranch?: string | undefined };
  installationId?: number | undefined;
  number: number;
  title: string;
  /** The issue's or pull request's own text (untrusted). */
  description: string;
  state: string;
  locked: boolean;
  commentId: number;
  body: string;
  author: { login: string; type?: string | undefined };
  /** A review comment's file and diff hunk (untrusted). */
  review?: { path?: string | undefined; diffHunk?: string | undefined } | undefined;
}

export type ReadEvent =
  | { handled: true; event: CommentEvent }
  | { handled: false; why: string }
  | { handled: 'invalid'; why: string };

export function readCommentEvent(name: string, payload: unknown): ReadEvent {
  const action = (payload as { action?: unknown } | null)?.action;
  if (name === 'issue_comment' && action === 'created') {
    const parsed = issueComment.safeParse(payload);
    if (!parsed.success) return { handled: 'invalid', why: 'not an issue_comment payload' };
    const p = parsed.data;
    return {
      handled: true,
      event: commentEventOf(p.issue.pull_request ? 'pull' : 'issue', p, p.issue),
    };
  }
  if (name === 'pull_request_review_comment' && action === 'created') {
    const parsed = reviewComment.safeParse(payload);
    if (!parsed.success)
      return { handled: 'invalid', why: 'not a pull_request_review_comment payload' };
    const p = parsed.data;
    return {
      handled: true,
      event: {
        ...commentEventOf('review_comment', p, p.pull_request),
        review: { path: p.comment.path, diffHunk: p.comment.diff_hunk },
      },
    };
  }
  return {
    handled: false,
    why: `${name}${typeof action === 'string' ? `/${action}` : ''} is not an event Berth acts on`,
  };
}

/** A comment on an issue or pull request (`on`), in the one shape. */
function commentEventOf(
  source: CommentEvent['source'],
  p: z.infer<typeof issueComment> | z.infer<typeof reviewComment>,
  on: z.infer<typeof thread>,
): CommentEvent {
  return {
    source,
    repository: repositoryOf(p.repository),
    installationId: p.installation?.id,
    number: on.number,
    title: on.title,
    description: on.body ?? '',
    state: on.state,
    locked: on.locked === true,
    commentId: p.comment.id,
    body: p.comment.body ?? '',
    author: p.comment.user,
  };
}

function repositoryOf(r: z.infer<typeof repository>): CommentEvent['repository'] {
  return {
    owner: r.owner.login,
    repo: r.name,
    fullName: r.full_name,
    defaultBranch: r.default_branch,
  };
}
