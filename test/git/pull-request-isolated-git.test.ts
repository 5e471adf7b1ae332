import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleSshRepository } from '../../src/lifecycle/checkout.js';
import { PullRequestService } from '../../src/services/pull-request-service.js';

/**
 * Review 5, finding 4: `task pr` ran the host's git with the server's HOME and system
 * configuration, so an operator's `url.*.insteadOf` turned the vetted ssh remote into an
 * unvetted http URL on loopback, and a filter the operator's configuration defines (git-lfs's,
 * say) ran on the working copy a repository's `.gitattributes` names. Real git, real listeners:
 * the http listener the rewrite points at must see no connection; the vetted ssh address (a
 * listener on 127.0.0.2, allowed) is what git contacts. The checkout's ssh bundle is held to
 * the same (it passed no HOME before either; this keeps it so).
 */

const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n';

function listen(host: string): Promise<{ server: Server; port: number; count: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  return new Promise((resolve) =>
    server.listen(0, host, () => {
      const address = server.address();
      resolve({
        server,
        port: typeof address === 'object' && address ? address.port : 0,
        count: () => connections,
      });
    }),
  );
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => 'no failure',
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );

/** `task pr` of a one-file diff to the ssh remote `url` (allowed on 127.0.0.2). */
function openSshPullRequest(taskId: string, url: string): Promise<unknown> {
  const service = new PullRequestService({
    githubApiUrl: 'http://127.0.0.1:9/unused',
    githubRemotes: {},
    gitAuthor: { name: 'Berth', email: 'berth@localhost' },
    allowLocalRepositories: false,
    addressPolicy: { allow: ['127.0.0.2/32'] },
    logger: { warn: () => undefined },
  });
  return service.open({
    taskId,
    repository: url,
    base: 'main',
    baseCommit: '0'.repeat(40),
    diff: 'diff --git a/PR.txt b/PR.txt\nnew file mode 100644\n--- /dev/null\n+++ b/PR.txt\n@@ -0,0 +1 @@\n+x\n',
    commitMessage: 'm',
    title: 't',
    body: 'b',
    draft: false,
    credentials: { username: 'git', password: KEY },
  });
}

describe('the host git of task pr and the ssh checkout', () => {
  let http: Awaited<ReturnType<typeof listen>>;
  let sshd: Awaited<ReturnType<typeof listen>>;
  let home: string;
  const savedHome = process.env.HOME;
  beforeAll(async () => {
    http = await listen('127.0.0.1');
    sshd = await listen('127.0.0.2');
    home = mkdtempSync(join(tmpdir(), 'berth-operator-home-'));
  });
  afterAll(() => {
    process.env.HOME = savedHome;
    http.server.close();
    sshd.server.close();
    rmSync(home, { recursive: true, force: true });
  });

  it("ignores the server's url.insteadOf: no connection to where it points", async () => {
    const url = `ssh://git@127.0.0.2:${sshd.port}/r.git`;
    writeFileSync(
      join(home, '.gitconfig'),
      `[url "http://127.0.0.1:${http.port}/insteadof/"]\n\tinsteadOf = ssh://git@127.0.0.2:${sshd.port}/\n`,
    );
    process.env.HOME = home;
    try {
      const pr = await failure(openSshPullRequest('task_insteadof1', url));
      expect(http.count(), pr).toBe(0);
      expect(sshd.count(), pr).toBe(1);

      const bundle = await failure(
        bundleSshRepository(url, {
          credentials: { username: 'git', password: KEY },
          addressPolicy: { allow: ['127.0.0.2/32'] },
        }),
      );
      expect(bundle).toContain('could not fetch the ssh repository');
      expect(http.count(), bundle).toBe(0);
      expect(sshd.count(), bundle).toBe(2);
    } finally {
      process.env.HOME = savedHome;
    }
  });

  it("ignores configuration in the server's environment (GIT_CONFIG_COUNT/KEY/VALUE, GIT_CONFIG_PARAMETERS)", async () => {
    const url = `ssh://git@127.0.0.2:${sshd.port}/r.git`;
    const rewrite = {
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: `url.http://127.0.0.1:${http.port}/viaenv/.insteadOf`,
      GIT_CONFIG_VALUE_0: `ssh://git@127.0.0.2:${sshd.port}/`,
      GIT_CONFIG_PARAMETERS: `'url.http://127.0.0.1:${http.port}/viaparams/.insteadof'='ssh://git@127.0.0.2:${sshd.port}/'`,
    };
    const saved = Object.fromEntries(Object.keys(rewrite).map((k) => [k, process.env[k]]));
    Object.assign(process.env, rewrite);
    const before = { http: http.count(), sshd: sshd.count() };
    try {
      const pr = await failure(openSshPullRequest('task_insteadof2', url));
      expect(http.count() - before.http, pr).toBe(0);
      expect(sshd.count() - before.sshd, pr).toBe(1);
      const bundle = await failure(
        bundleSshRepository(url, {
          credentials: { username: 'git', password: KEY },
          addressPolicy: { allow: ['127.0.0.2/32'] },
        }),
      );
      expect(http.count() - before.http, bundle).toBe(0);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("runs no filter the server's configuration defines on the working copy", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-pr-filter-'));
    const marker = join(dir, 'filter-ran');
    writeFileSync(
      join(home, '.gitconfig'),
      `[filter "lfs"]\n\tsmudge = touch ${marker} && cat\n\tclean = touch ${marker} && cat\n\tprocess = touch ${marker}\n\trequired = true\n`,
    );
    const work = join(dir, 'work');
    const bare = join(dir, 'bare.git');
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
        encoding: 'utf8',
      }).trim();
    execFileSync('git', ['init', '-q', '-b', 'main', work]);
    writeFileSync(join(work, '.gitattributes'), '*.txt filter=lfs diff=lfs merge=lfs -text\n');
    writeFileSync(join(work, 'a.txt'), 'a\n');
    git('add', '-A');
    git('commit', '-qm', 'base');
    const base = git('rev-parse', 'HEAD');
    execFileSync('git', ['clone', '-q', '--bare', work, bare], { env: { PATH: process.env.PATH } });
    process.env.HOME = home;
    try {
      const service = new PullRequestService({
        githubApiUrl: 'http://127.0.0.1:9/unused',
        githubRemotes: {},
        gitAuthor: { name: 'Berth', email: 'berth@localhost' },
        allowLocalRepositories: true,
      });
      const outcome = await failure(
        service.open({
          taskId: 'task_filter1',
          repository: bare,
          base: 'main',
          baseCommit: base,
          diff: 'diff --git a/b.txt b/b.txt\nnew file mode 100644\n--- /dev/null\n+++ b/b.txt\n@@ -0,0 +1 @@\n+b\n',
          commitMessage: 'm',
          title: 't',
          body: 'b',
          draft: false,
        }),
      );
      expect(existsSync(marker), outcome).toBe(false);
      expect(outcome).toBe('no failure');
    } finally {
      process.env.HOME = savedHome;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
