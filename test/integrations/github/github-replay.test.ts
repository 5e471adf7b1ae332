import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  issueCommentPayload,
  openGitHubWorld,
  reviewCommentPayload,
  type GitHubWorld,
} from './github-world.js';

/*
 * Review 3 (finding 3): `X-GitHub-Delivery` is not covered by the signature (the HMAC is of the
 * body only), so a captured signed delivery sent again under new ids must not start a task each
 * time: what the body names (the event, its action, the repository and the comment's id) is
 * taken once too, remembered in the store and never pruned.
 */

let world: GitHubWorld;
beforeEach(async () => {
  world = await openGitHubWorld();
});
afterEach(async () => {
  await world.close();
});

const taskCount = async () => (await world.store.listTasks({ limit: 100 })).length;

describe('a signed body replayed under new delivery ids', () => {
  it('starts one task; the others answer 200 duplicate', async () => {
    const payload = issueCommentPayload({ body: '@berth fix the adder', commentId: 4242 });
    const answers: { status: number; body: unknown }[] = [];
    for (const id of ['orig-1', 'replay-2', 'replay-3']) {
      const response = await world.deliver('issue_comment', payload, id);
      answers.push({ status: response.status, body: await response.json() });
    }
    expect(answers[0]?.status).toBe(202);
    expect(answers.slice(1)).toEqual([
      { status: 200, body: { duplicate: true } },
      { status: 200, body: { duplicate: true } },
    ]);
    expect(await taskCount()).toBe(1);
    // Remembered in the store, after the old delivery ids are pruned.
    expect(await world.store.pruneGitHubDeliveries('9999-01-01T00:00:00.000Z')).toBeGreaterThan(0);
    expect((await world.deliver('issue_comment', payload, 'replay-4')).status).toBe(200);
    expect(await taskCount()).toBe(1);
  });

  it('another comment (another id), or a review comment with the same number, is its own request', async () => {
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix it', commentId: 1 }),
    );
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix it', commentId: 2 }),
    );
    expect(await taskCount()).toBe(2);
    // Review comments have their own ids: the same number is another comment.
    const review = reviewCommentPayload({ body: '@berth fix it', number: 7, commentId: 1 });
    const response = await world.deliver('pull_request_review_comment', review);
    expect(response.status).toBe(202);
  });
});
