import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { FakeModelServer, type FakeRequest, type FakeReply } from '../support/fake-model-server.js';
import { FakeGitHub } from '../support/fake-github.js';
import { tempDir } from '../support/cli.js';
import { lifecycleTestImage, makeSampleRepository } from '../docker/lifecycle-support.js';
import { openBrowser, signIn, type TestBrowser } from './support/browser.js';

/**
 * A task in the web UI, on the real Docker engine with the scripted model: started from the
 * "New task" form with 3 attempts, its log, commands, diff and answer read, the attempts compared
 * side by side and one picked; the environment's cache panel before and after a reset.
 * Everything the sandbox and the repository produce is hostile: the output, a file name, the
 * branch name, the prompt and the agent's message carry <script>, <img onerror> and javascript:
 * links, each setting a window flag if it ever ran; none may be set, no javascript: link exists.
 */

const BRANCH = 'inj<img/src=x/onerror=window.__pwnBranch=1>';
const FILE = '<img src=x onerror=window.__pwnFile=1>.txt';
const PROMPT = 'Change things <script>window.__pwnPrompt=1</script>';
const MESSAGE =
  'Done <script>window.__pwnMessage=1</script> <img src=x onerror="window.__pwnMessageImg=1"> see [link](javascript:window.__pwnMessageLink=1) javascript:window.__pwnBare=1';
const SCRIPT = [
  `printf '%s\\n' '<script>window.__pwnLog=1</script>' '<img src=x onerror="window.__pwnImg=1">' '<a href="javascript:window.__pwnLink=1">x</a>'`,
  `printf '\\033[31mred text\\033[0m\\n'`,
  `printf 'progress 10%%\\rprogress 100%%\\n'`,
  `echo '<script>window.__pwnDiff=1</script>' > '${FILE}'`,
  `echo '<img src=x onerror=window.__pwnReadme=1>' >> README.md`,
  `echo '# more' >> src/add.sh`,
].join('\n');

const FOLLOW_UP = 'Now add a NOTES file';
const FOLLOW_UP_SCRIPT = `echo 'turn two' > NOTES`;
const SLUG = 'acme/app';
const GITHUB_TOKEN = 'ghp_web_ui_test_token';

/**
 * Per request (the task's and the follow-up's): one shell call with the hostile script (the
 * follow-up's own script), then the hostile answer.
 */
function scripted(request: FakeRequest): FakeReply {
  const messages = request.body.messages;
  const asked = messages.findLastIndex((m) => m.role === 'user');
  const followUp = messages[asked]?.content === FOLLOW_UP;
  if (!messages.slice(asked + 1).some((m) => m.role === 'tool')) {
    const command = followUp ? FOLLOW_UP_SCRIPT : SCRIPT;
    return { toolCalls: [{ name: 'shell', arguments: { command: ['bash', '-c', command] } }] };
  }
  return { content: followUp ? 'Added NOTES.' : MESSAGE };
}

describe('web UI: a task with hostile output (docker)', () => {
  let server: TestServer;
  let model: FakeModelServer;
  let github: FakeGitHub;
  let browser: TestBrowser;
  let image: string;
  beforeAll(async () => {
    image = lifecycleTestImage();
    const repo = makeSampleRepository();
    execFileSync('git', ['-C', repo.dir, 'branch', BRANCH, 'main']);
    // The repository as a bare remote the fake GitHub knows as acme/app (for "Create pull request").
    const bare = join(tempDir('web-ui-remote'), 'app.git');
    execFileSync('git', ['clone', '-q', '--bare', repo.dir, bare]);
    github = new FakeGitHub({ token: GITHUB_TOKEN, repositories: { [SLUG]: bare } });
    await github.start();
    model = await FakeModelServer.start(Array.from({ length: 12 }, () => scripted));
    server = await startTestServer({
      allowLocalRepositories: true,
      env: {
        BERTH_MODEL_BASE_URL: model.baseUrl,
        BERTH_MODEL: 'scripted',
        BERTH_MODEL_API_KEY: 'test-key',
        BERTH_GITHUB_TOKEN: GITHUB_TOKEN,
        BERTH_GITHUB_API_URL: github.url,
        BERTH_GITHUB_REMOTES: `${bare}=${SLUG}`,
      },
    });
    const created = await server.request('POST', '/v1/environments', {
      body: { spec: { name: 'web', repository: bare, image } },
    });
    expect(created.status, created.text).toBe(201);
    browser = await openBrowser();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await model?.close();
    await github?.stop();
  });

  it('runs a task from the form; log, commands, diff and answer are text; picks an attempt; nothing injected runs', async () => {
    const { page } = browser;
    await signIn(page, server.url, server.adminToken, '/tasks');
    await page.getByRole('button', { name: 'New task' }).click();
    await page.getByLabel('Environment', { exact: true }).selectOption('web');
    await page.getByLabel('Branch or SHA').fill(BRANCH);
    await page.getByLabel('Attempts').fill('3');
    await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
    await page.getByRole('button', { name: 'Start task' }).click();
    await page.waitForURL(/\/tasks\/task_/);
    const taskId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2] ?? '');

    // The page follows the task until it ends (polling and the event stream).
    await page
      .locator('.heading .status')
      .filter({ hasText: /^(succeeded|failed|cancelled)$/ })
      .waitFor({ timeout: 150_000 });
    const task = (await server.request('GET', `/v1/tasks/${taskId}`)).json as {
      status: string;
      branch: string;
      attempts: { id: string; status: string; error: string | null }[];
    };
    expect(task.status, JSON.stringify(task.attempts.map((a) => a.error))).toBe('succeeded');
    expect(task.branch).toBe(BRANCH);

    const detail = page.getByRole('region', { name: 'Attempt 1 details' });
    await detail.getByRole('list', { name: 'Phases' }).getByText('agent').waitFor();
    // The branch, the prompt, the output, the file name and the answer are shown as text.
    await page.getByText(BRANCH, { exact: true }).waitFor();
    await page.getByText(PROMPT, { exact: true }).waitFor();
    await detail.locator('pre.message').getByText(MESSAGE, { exact: true }).waitFor();
    // The agent's turns: its tool call and its message, as text.
    const turns = detail.getByRole('list', { name: 'Agent turns' });
    await turns.getByText(MESSAGE, { exact: true }).waitFor();
    expect(await turns.textContent()).toContain('→ shell');
    const tree = detail.getByRole('navigation', { name: 'Changed files' });
    await tree.getByText(FILE).waitFor();
    // The file tree: src/ holds add.sh; its button brings that file's diff into view.
    expect(await tree.textContent()).toContain('src/');
    await tree.getByRole('button', { name: 'add.sh' }).click();
    const top = await detail
      .locator('.diff-file-name')
      .filter({ hasText: 'src/add.sh' })
      .first()
      .evaluate((e: { getBoundingClientRect(): { top: number } }) => e.getBoundingClientRect().top);
    expect(top).toBeGreaterThanOrEqual(0);
    expect(top).toBeLessThan(900);
    await detail
      .getByRole('region', { name: 'Diff of attempt 1' })
      .getByText('<script>window.__pwnDiff=1</script>', { exact: true })
      .waitFor();
    const commands = detail.getByRole('list', { name: 'Commands' });
    expect(await commands.textContent()).toContain('<script>window.__pwnLog=1</script>');
    // The log stream: ANSI colours become coloured text; a \r progress bar shows its last state.
    const log = detail.getByRole('log', { name: 'Log' });
    await log.getByText('<script>window.__pwnLog=1</script>', { exact: true }).waitFor();
    const lines = await log.locator('.log-line').allTextContents();
    expect(lines).toContain('progress 100%');
    expect(lines.filter((line) => line.startsWith('progress 10%'))).toEqual([]);
    expect(lines.join('\n')).not.toContain('\u001b[');
    const red = await log.getByText('red text', { exact: true }).getAttribute('style');
    expect(red).toMatch(/color: rgb\(\d+, 0, 0\)/);
    await browser.screenshots('task');

    // The three attempts side by side: each with its status, verify result, files and lines
    // changed, time and tokens.
    expect(task.attempts.length).toBe(3);
    for (const n of [1, 2, 3]) {
      const card = page.getByRole('article', { name: `Attempt ${n}` });
      const text = (await card.textContent()) ?? '';
      expect(text, `attempt ${n}`).toContain('succeeded');
      expect(text).toMatch(/Verify/);
      expect(text).toMatch(/Files3 \(\+\d+ −\d+\)/);
      expect(text).toMatch(/Time\d/);
      expect(text).toMatch(/Tokens\d+/);
    }
    const boxes = await page
      .locator('.attempts article')
      .evaluateAll((cards: { getBoundingClientRect(): { top: number; left: number } }[]) =>
        cards.map((card) => card.getBoundingClientRect()),
      );
    // Side by side at 1280 px: one row, left to right.
    expect(new Set(boxes.map((b) => Math.round(b.top))).size).toBe(1);
    expect(boxes.map((b) => b.left)).toEqual([...boxes.map((b) => b.left)].sort((a, b) => a - b));

    // Pick the second attempt.
    const second = page.getByRole('article', { name: 'Attempt 2' });
    await second.getByRole('button', { name: 'Pick' }).click();
    await second.getByText('picked').waitFor();
    const after = (await server.request('GET', `/v1/tasks/${taskId}`)).json as { picked: string };
    expect(after.picked).toBe(task.attempts[1]?.id);
    await second.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('region', { name: 'Attempt 2 details' }).waitFor();
    expect(await page.locator('.apply-command').textContent()).toBe(
      `npx berth task apply ${taskId} --attempt ${task.attempts[1]?.id}`,
    );

    // Nothing injected ran, no javascript: link exists, and the page kept its CSP.
    const flags = await page.evaluate<string>(
      'JSON.stringify(Object.keys(window).filter((k) => k.startsWith("__pwn")))',
    );
    expect(flags).toBe('[]');
    expect(await page.locator('a[href^="javascript" i]').count()).toBe(0);
    expect(await page.locator('script:not([src])').count()).toBe(0);
    expect(await page.locator('#root img').count()).toBe(0);
    const response = await page.goto(`${server.url}/tasks/${taskId}`);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.getByRole('region', { name: /details/ }).waitFor();
    await page.getByText(MESSAGE, { exact: true }).first().waitFor();
    expect(
      await page.evaluate<string>(
        'JSON.stringify(Object.keys(window).filter((k) => k.startsWith("__pwn")))',
      ),
    ).toBe('[]');

    // A follow-up on the picked attempt: a new turn, with its own diff.
    await page.getByRole('textbox', { name: 'Follow-up prompt' }).fill(FOLLOW_UP);
    await page.getByRole('button', { name: 'Send follow-up' }).click();
    const turn = page.getByRole('article', { name: 'Attempt 4' });
    await turn.getByText('picked').waitFor({ timeout: 120_000 });
    await turn.getByRole('button', { name: 'Show' }).click();
    const turnDetail = page.getByRole('region', { name: 'Attempt 4 details' });
    await turnDetail
      .getByText(`Follow-up of ${task.attempts[1]?.id ?? ''}`, { exact: false })
      .waitFor();
    await page
      .locator('.heading .status')
      .filter({ hasText: /^(succeeded|failed)$/ })
      .waitFor({ timeout: 120_000 });
    const turnDiff = turnDetail.getByRole('region', { name: 'Diff of this turn' });
    await turnDiff.getByRole('navigation', { name: 'Changed files' }).getByText('NOTES').waitFor();
    expect(
      await turnDiff.getByRole('navigation', { name: 'Changed files' }).textContent(),
    ).not.toContain(FILE);

    // A pull request against the fake GitHub: its link shows, an http(s) link.
    await page.getByLabel('Pull request title').fill('Web UI change <b>bold</b>');
    await page.getByRole('button', { name: 'Create pull request' }).click();
    const prLink = page.getByRole('form', { name: 'Pull request' }).getByRole('link');
    await prLink.waitFor({ timeout: 60_000 });
    expect(await prLink.getAttribute('href')).toMatch(/^https?:\/\//);
    expect(github.pulls.length).toBe(1);
    await browser.screenshots('task-follow-up-pr');

    // The list shows it, newest first, with its status and branch.
    await page.getByRole('link', { name: 'Tasks' }).click();
    const row = page.getByRole('row').filter({ hasText: taskId });
    await row.waitFor();
    expect(await row.textContent()).toContain('succeeded');
    expect(await row.textContent()).toContain(BRANCH);
    expect(await row.textContent()).toContain('admin');
    await browser.screenshots('tasks');
  });

  it('a member of no environment sees no task: the list is empty, the task page is not found', async () => {
    const tasks = (await server.request('GET', '/v1/tasks')).json as { tasks: { id: string }[] };
    const taskId = tasks.tasks[0]?.id ?? '';
    expect(taskId).toMatch(/^task_/);
    const outsider = await server.createToken('outsider');
    const other = await openBrowser();
    try {
      const { page } = other;
      await signIn(page, server.url, outsider, `/tasks/${taskId}`);
      await page.waitForURL(`${server.url}/tasks/${taskId}`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();
      expect(await page.content()).not.toContain(BRANCH);
      await page.getByRole('link', { name: 'Tasks', exact: true }).click();
      await page.getByText('No tasks.').waitFor();
    } finally {
      await other.close();
    }
  });

  it('a failed attempt shows its failure first: the phase, the error and the log tail', async () => {
    const broken = await server.request('POST', '/v1/environments', {
      body: {
        spec: {
          name: 'broken',
          repository: (
            (await server.request('GET', '/v1/environments/web')).json as {
              spec: { repository: { url: string } };
            }
          ).spec.repository.url,
          image,
          setup: "seq 1 300; echo 'about to fail <script>window.__pwnSetup=1</script>'; exit 3",
        },
      },
    });
    expect(broken.status, broken.text).toBe(201);
    const { page } = browser;
    await page.goto(`${server.url}/tasks`);
    await page.getByRole('button', { name: 'New task' }).click();
    await page.getByLabel('Environment', { exact: true }).selectOption('broken');
    await page.getByRole('radio', { name: 'a command' }).check();
    await page.getByRole('textbox', { name: 'Command' }).fill('true');
    await page.getByRole('button', { name: 'Start task' }).click();
    await page.waitForURL(/\/tasks\/task_/);
    const failure = page.locator('#failure');
    await failure.waitFor({ timeout: 120_000 });
    expect(await failure.getByRole('heading').textContent()).toBe('Failed in setup');
    await failure.getByText('about to fail <script>window.__pwnSetup=1</script>').waitFor();
    // The failure comes before the timeline and the log.
    const order = await page.evaluate<string>(
      'JSON.stringify([...document.querySelectorAll("#failure, [aria-label=Phases], [role=log]")].map((e) => e.id || e.getAttribute("role") || e.getAttribute("aria-label")))',
    );
    expect(JSON.parse(order)).toEqual(['failure', 'Phases', 'log']);
    // "Jump to the failure": the log, scrolled away to its top, shows the failing line marked.
    const log = page.getByRole('log', { name: 'Log' });
    await log.getByText('about to fail', { exact: false }).waitFor();
    await page.getByRole('button', { name: 'Pause' }).click();
    await log.evaluate((element: { scrollTop: number }) => (element.scrollTop = 0));
    await log.getByText('1', { exact: true }).waitFor();
    expect(await log.getByText('setup script exited with code 3').count()).toBe(0);
    await failure.getByRole('button', { name: 'Jump to the failure' }).click();
    const marked = log.locator('.log-line.marked');
    await marked.waitFor();
    // Berth's own record: its marker element beside the text (web-hardening.test.ts).
    expect(await marked.textContent()).toBe('✖setup script exited with code 3');
    expect(await marked.getByRole('img', { name: 'Berth: error' }).count()).toBe(1);
    expect(await marked.isVisible()).toBe(true);
    expect(
      await page.evaluate<string>(
        'JSON.stringify(Object.keys(window).filter((k) => k.startsWith("__pwn")))',
      ),
    ).toBe('[]');
    await browser.screenshots('task-failed');
  });

  it('a running task: its log, current command and changed files show live, then "Cancel" stops it; the pages kept their CSP', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/tasks`);
    await page.getByRole('button', { name: 'New task' }).click();
    await page.getByLabel('Environment', { exact: true }).selectOption('web');
    await page.getByRole('radio', { name: 'a command' }).check();
    await page
      .getByRole('textbox', { name: 'Command' })
      .fill(
        'echo early > live-file.txt; for i in $(seq 1 600); do echo "tick $i"; sleep 0.2; done',
      );
    await page.getByRole('button', { name: 'Start task' }).click();
    await page.waitForURL(/\/tasks\/task_/);
    const log = page.getByRole('log', { name: 'Log' });
    // Lines arrive while the command runs (the task is still running when they show).
    await log.getByText('tick 3', { exact: true }).waitFor({ timeout: 120_000 });
    expect(await page.locator('.heading .status').textContent()).toBe('running');
    await log.getByText('tick 6', { exact: true }).waitFor();
    // The command it is on, and the files changed so far, while it runs (not only at the end).
    const current = page.getByRole('status', { name: 'Current command' });
    expect(await current.textContent()).toContain('echo early > live-file.txt');
    const soFar = page.getByRole('region', { name: 'Changed so far' });
    await soFar.getByText('live-file.txt').waitFor({ timeout: 30_000 });
    expect(await soFar.textContent()).toContain('1 file');
    expect(await page.locator('.heading .status').textContent()).toBe('running');
    await browser.screenshots('task-running');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page
      .locator('.heading .status')
      .filter({ hasText: 'cancelled' })
      .waitFor({ timeout: 60_000 });
    expect(browser.consoleErrors.filter((m) => /Content.Security.Policy/i.test(m))).toEqual([]);
  });

  it('"Test environment" runs up to lockdown and a command, and shows its output', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/environments/web`);
    await page.getByLabel('Test command').fill('echo "tested-$((6*7))"');
    await page.getByRole('button', { name: 'Test environment' }).click();
    await page.waitForURL(/\/tasks\/task_/);
    const log = page.getByRole('log', { name: 'Log' });
    await log.getByText('tested-42', { exact: true }).waitFor({ timeout: 120_000 });
    await page.locator('.heading .status').filter({ hasText: 'succeeded' }).waitFor();
    const phases = await page.getByRole('list', { name: 'Phases' }).textContent();
    expect(phases).toContain('lockdown');
  });

  it("shows the proxy's decisions: a request to a host not on the allowlist, denied", async () => {
    const repository = (
      (await server.request('GET', '/v1/environments/web')).json as {
        spec: { repository: { url: string } };
      }
    ).spec.repository.url;
    const created = await server.request('POST', '/v1/environments', {
      body: {
        spec: {
          name: 'net',
          repository,
          image,
          internet: { access: 'allowlist', domains: ['allowed.example.test'] },
        },
      },
    });
    expect(created.status, created.text).toBe(201);
    // perl's HTTP::Tiny goes through the proxy the sandbox is given; the name is not allowed, so
    // nothing leaves this machine.
    const submitted = await server.request('POST', '/v1/tasks', {
      body: {
        environment: 'net',
        command: `perl -MHTTP::Tiny -e 'print HTTP::Tiny->new(timeout => 10)->get("http://denied.example.test/")->{status}, "\\n"'`,
      },
    });
    expect(submitted.status, submitted.text).toBe(201);
    const { page } = browser;
    await page.goto(`${server.url}/tasks/${(submitted.json as { id: string }).id}`);
    const row = page.getByRole('row').filter({ hasText: 'denied.example.test' });
    await row.waitFor({ timeout: 120_000 });
    const text = (await row.textContent()) ?? '';
    expect(text).toContain('GET');
    expect(text).toContain('denied');
  });

  it('the cache panel: key parts, age, size, expiry, the part changed since the build; reset after confirming', async () => {
    const entries = async () =>
      (
        (await server.request('GET', '/v1/environments/web/cache')).json as {
          entries: { key: string; staleBecause: string[] }[];
        }
      ).entries;
    const built = await entries();
    expect(built.length).toBeGreaterThan(0);
    const { page } = browser;
    await page.goto(`${server.url}/environments/web`);
    const panel = page.getByRole('region', { name: 'Cache' });
    const row = panel.getByRole('row').filter({ hasText: built[0]?.key.slice(0, 16) ?? '?' });
    await row.waitFor();
    const cells = await row.getByRole('cell').allTextContents();
    expect(cells[1]).toBe('live');
    expect(cells[2]).toMatch(/\d+ ?(s|min|h)/);
    expect(cells[3]).toMatch(/\d+(\.\d+)? ?(B|KB|MB|GB|kB|KiB|MiB|GiB)/);
    expect(Date.parse(cells[4] ?? '')).not.toBeNaN();
    expect(cells[5]).toBe('nothing');
    const parts = panel.getByRole('region', { name: 'Key parts of the last build' });
    await parts.getByText('No key part changed since the last build.').waitFor();
    const partsText = (await parts.textContent()) ?? '';
    expect(partsText).toContain('Base imagesha256:');
    expect(partsText).toMatch(/Repository\/.*app\.git \(main\)/);
    expect(partsText).toContain('Setupnone');

    // The setup changes: the panel names it as the part changed since the build.
    const current = (await server.request('GET', '/v1/environments/web')).json as {
      spec: { repository: { url: string } };
    };
    const updated = await server.request('PUT', '/v1/environments/web', {
      body: {
        spec: { name: 'web', repository: current.spec.repository.url, image, setup: 'true' },
      },
    });
    expect(updated.status, updated.text).toBe(200);
    await page.reload();
    await parts
      .getByText('Changed since the last build: setup. The next task runs setup again.')
      .waitFor();
    expect(await row.getByRole('cell').nth(1).textContent()).toBe('stale');
    expect(await row.getByRole('cell').nth(5).textContent()).toBe('setup');
    expect((await entries())[0]?.staleBecause).toEqual(['setup']);
    await browser.screenshots('environment-cache');

    // Reset only after confirming: "Keep it" keeps it; "Yes" removes every entry.
    await panel.getByRole('button', { name: 'Reset cache' }).click();
    await panel.getByRole('button', { name: 'Keep it' }).click();
    expect((await entries()).length).toBe(built.length);
    await panel.getByRole('button', { name: 'Reset cache' }).click();
    await panel.getByRole('group', { name: 'Confirm cache reset' }).waitFor();
    await panel.getByRole('button', { name: 'Yes, reset the cache' }).click();
    await panel.getByText('Cache reset.').waitFor();
    await panel.getByText('No cache entry.').waitFor();
    expect(await parts.count()).toBe(0);
    expect(await entries()).toEqual([]);
  });
});
