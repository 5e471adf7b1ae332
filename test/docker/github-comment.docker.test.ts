import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeGitHub } from '../support/fake-github.js';
import { signedDelivery } from '../support/fake-github.js';
import {
  FakeModelServer,
  lastToolResult,
  type FakeReply,
  type FakeRequest,
} from '../support/fake-model-server.js';
import { makeBuggyAdderRepository } from '../support/buggy-adder-repository.js';
import { removeInstanceImages } from '../support/docker-cleanup.js';
import { runGit } from '../support/run-git.js';
import { startBestOfNWorld, type BestOfNWorld } from './best-of-n-support.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * Issue 15's scene once on the real engine: `berth serve` with BERTH_GITHUB_WEBHOOK_SECRET, a
 * signed issue comment "@berth fix the adder" from a writer of acme/adder, the model agent (a
 * scripted Chat Completions server) fixing src/add.sh in a sandbox, berth/<task-id> pushed to the
 * bare remote, a pull request whose body says Fixes #N on the fake GitHub, and the reply linking
 * it. The rest of the GitHub paths are tested without Docker (test/integrations/github/).
 */

const INSTANCE = `ghcomment-${process.pid}`;
const TOKEN = 'ghs-gh-comment-token';
const SECRET = 'whsec-gh-comment';
const BUGGY = 'add() { echo $(( $1 - $2 )); }';
const FIXED = 'add() { echo $(( $1 + $2 )); }';

function scripted(request: FakeRequest): FakeReply {
  const messages = request.body.messages;
  if (!messages.some((m) => m.role === 'tool'))
    return {
      toolCalls: [
        {
          name: 'apply_patch',
          arguments: {
            input: [
              '*** Begin Patch',
              '*** Update File: src/add.sh',
              '@@',
              ' # add two numbers',
              `-${BUGGY}`,
              `+${FIXED}`,
              '*** End Patch',
            ].join('\n'),
          },
        },
      ],
    };
  const result = lastToolResult(request);
  return {
    content: result.includes('src/add.sh') ? 'Made add() add. @octocat' : `UNEXPECTED ${result}`,
  };
}

let model: FakeModelServer;
let world: BestOfNWorld;
let github: FakeGitHub;

beforeAll(async () => {
  const image = lifecycleTestImage();
  model = await FakeModelServer.start([]);
  world = await startBestOfNWorld({
    prefix: 'gh-comment',
    repository: makeBuggyAdderRepository('gh-comment'),
    slug: 'acme/adder',
    token: TOKEN,
    serveArgs: ['--model-base-url', model.baseUrl, '--model', 'fake-coder'],
    serveEnv: {
      BERTH_MODEL_API_KEY: 'sk-gh-comment',
      BERTH_INSTANCE: INSTANCE,
      BERTH_GITHUB_WEBHOOK_SECRET: SECRET,
    },
  });
  github = world.github;
  (
    github as unknown as { options: { permissions: Record<string, Record<string, string>> } }
  ).options.permissions = { 'acme/adder': { writer: 'write' } };
  await world.createEnv(
    'gh-comment',
    'adder.yaml',
    `name: adder\nrepository: ${world.bare}\nimage: ${image}\nverify: sh test.sh\ntriggers:\n  github:\n    repository: acme/adder\n`,
  );
}, 180_000);

afterAll(async () => {
  await world?.stop();
  await model?.close();
  removeInstanceImages(INSTANCE);
});

describe('@berth on an issue, end to end (docker)', () => {
  it('fixes the issue in a sandbox, opens a PR with Fixes #N, and replies', async () => {
    model.push(scripted, scripted);
    const payload = {
      action: 'created',
      issue: {
        number: 12,
        title: 'add() subtracts',
        body: 'add 2 3 gives -1',
        state: 'open',
        locked: false,
      },
      comment: { id: 4001, body: '@berth fix the adder', user: { login: 'writer', type: 'User' } },
      repository: {
        full_name: 'acme/adder',
        name: 'adder',
        owner: { login: 'acme' },
        default_branch: 'main',
      },
    };
    const response = await fetch(
      signedDelivery(
        `${world.server.url}/v1/integrations/github/webhook`,
        SECRET,
        'issue_comment',
        payload,
        'd-docker-1',
      ),
    );
    expect(response.status).toBe(202);
    const deadline = Date.now() + 150_000;
    while (github.comments.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 500));
    expect(github.reactions).toEqual([
      expect.objectContaining({ repository: 'acme/adder', comment: 4001, content: 'eyes' }),
    ]);
    expect(github.pulls).toHaveLength(1);
    const pull = github.pulls[0]!;
    expect(pull.body.startsWith('Fixes #12\n')).toBe(true);
    expect(runGit(world.bare, 'show', `${pull.head}:src/add.sh`)).toContain(FIXED);
    const reply = github.comments[0]!;
    expect(reply.issue).toBe(12);
    expect(reply.body).toContain('Opened pull request #1');
    expect(reply.body).toContain('Verify: passed');
    expect(reply.body.split('```')[0]).not.toContain('@octocat');
    // The agent saw the issue and the request.
    const first = JSON.stringify(model.requests[0]?.body.messages ?? []);
    expect(first).toContain('add() subtracts');
    expect(first).toContain('fix the adder');
  }, 200_000);
});
