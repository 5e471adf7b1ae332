import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import {
  checkGitReading,
  isCutDiff,
  refusePlantedRepository,
  shownPath,
} from '../git/apply-diff.js';
import { diffPathBytes, diffPaths, readDiffHeadersAsync } from '../git/diff-headers.js';
import { githubRepositoryAllowed } from '../git/github-repository-patterns.js';
import { GitHubClient, type PullRequest } from '../git/github-client.js';
import { parseGitHubRemote, type GitHubRepository } from '../git/github-remote.js';
import { runGit, runGitOk, type GitResult } from '../git/run-git.js';
import { SshKeySession } from '../lifecycle/ssh-key-session.js';
import type { RemoteAddressPolicy } from '../git/remote-address.js';
import { vetSshTarget } from '../git/ssh-target.js';
import { ISOLATED_GIT_ENV, vetHttpTarget } from '../git/http-target.js';
import { createLogger, type Logger } from '../util/logger.js';
import {
  credentialArgs,
  parseRepositoryLocation,
  type GitCredentials,
} from '../lifecycle/checkout.js';

/**
 * `berth task pr`: the picked attempt's diff becomes a branch `berth/<task-id>` on the
 * repository's remote and, for GitHub (and GitHub Enterprise by API base), a pull request.
 *
 * Threat model: this runs in the orchestrator, never in a sandbox, because it holds the
 * credentials (the environment's `repository.credentials` secret, the server's GitHub token,
 * credentials written in the repository URL); they reach git only
 * through a one-shot credential helper reading variables of the git process that talks to the
 * remote (never argv, never a file, never a message; see `credentialArgs`) and the GitHub API
 * as a header. An ssh remote is reached with the environment's private key only, in a 0600 file
 * for the length of the push (`SshKeySession`), never the operator's keys. The remote is a token
 * holder's URL, so git connects only to its host's vetted address (ssh-target.ts for ssh,
 * http-target.ts for https, http and git://: no loopback, private or own address unless the
 * operator allows it, no redirect, no operator git configuration), and a failed clone of an https,
 * http or git:// remote answers a fixed message (git's, which would tell whether the port
 * answered, goes to the log). The repository is
 * cloned into a fresh temporary directory, hooks off, and removed afterwards; every git here
 * (clone, checkout, apply, commit, push, over ssh too) runs without the server's system, global or
 * HOME configuration (no operator `url.*.insteadOf`, filter or proxy; git-lfs never smudges), ssh
 * remotes with `protocol.allow` for ssh only (review 5); the diff is applied
 * with `git apply` (no code from the repository runs), after its headers passed the checks of
 * git/diff-headers.ts (no copy or rename, no path outside the tree or in `.git`: a hand-made diff
 * could otherwise copy a file of this host, its ssh keys say, into the push), and the commit must
 * change exactly the paths the diff names (compared as bytes), and the diff may not make a
 * directory look like a git repository with what the base commit has (embedded-repository.ts).
 * The server's `BERTH_GITHUB_TOKEN` is used only for the repositories
 * `BERTH_GITHUB_REPOSITORIES` lists (when set) and never over plain HTTP, and a commit that adds
 * or changes `.github/workflows` (a file below it, or it or `.github` itself as a symlink or a
 * gitlink, in any case), which the forge runs on push before review, is pushed only with
 * `allowWorkflows`. Re-running updates the same branch
 * (force-with-lease against the value just read, so a concurrent push is not overwritten) and
 * the same pull request. A failure says what was already done.
 */

export interface PullRequestSettings {
  githubToken?: string | undefined;
  githubApiUrl: string;
  githubRemotes: Readonly<Record<string, string>>;
  gitAuthor: { name: string; email: string };
  allowLocalRepositories: boolean;
  /** Host keys trusted on first use for ssh remotes, one file per environment (as the checkout's). */
  knownHostsDir?: string | undefined;
  /**
   * Where a remote's clone and push may connect (ssh-target.ts for ssh, http-target.ts for https,
   * http and git://, as the checkout): public unicast, or the operator's BERTH_SETUP_ALLOW ranges;
   * never the machine's own addresses. Default: public.
   */
  addressPolicy?: RemoteAddressPolicy | undefined;
  /**
   * Where git's own message goes when a clone fails (the caller gets a fixed one); default: the
   * process's standard error, where the server logs.
   */
  logger?: Pick<Logger, 'warn'> | undefined;
  /**
   * `OWNER/NAME` patterns (`*` for a whole segment) of the GitHub repositories the server's
   * `githubToken` may push to and open pull requests on (`BERTH_GITHUB_REPOSITORIES`); empty or
   * absent: every repository.
   */
  githubRepositories?: readonly string[] | undefined;
}

export interface OpenPullRequestInput {
  taskId: string;
  /** The task's environment: whose trusted ssh host keys an ssh remote is checked against. */
  environmentId?: string | undefined;
  /** The repository location (the task's override, else the environment's). */
  repository: string;
  /** The branch the pull request goes into. */
  base: string;
  baseCommit: string;
  diff: string;
  commitMessage: string;
  title: string;
  body: string;
  draft: boolean;
  /** Push even when the commit adds or changes files under `.github/workflows/`. */
  allowWorkflows?: boolean | undefined;
  /**
   * Push the commit onto this existing branch instead of `berth/<task-id>` (a pull request's head
   * in the same repository): a fast-forward only, never forced, and no pull request is opened.
   */
  pushTo?: string | undefined;
  /**
   * Open the pull request in this other repository of the network (a fork whose pull request
   * asked), into its branch `base`, with the head `OWNER:berth/<task-id>` of this repository:
   * nothing is pushed to that repository.
   */
  pullInto?: { repository: GitHubRepository; base: string } | undefined;
  /**
   * The environment's git credentials (`repository.credentials`): for the clone and the push over
   * HTTPS, and as the GitHub API token. Without them: credentials in the URL, then the server's
   * BERTH_GITHUB_TOKEN for a GitHub remote.
   */
  credentials?: GitCredentials | undefined;
  signal?: AbortSignal;
}

export interface PullRequestOutcome {
  branch: string;
  /** The remote, without credentials. */
  remote: string;
  commit: string;
  base: string;
  pullRequest: (PullRequest & { created: boolean }) | null;
}

/** What the task service needs (so it can be left out where pull requests are not set up). */
export interface PullRequestOpener {
  open(input: OpenPullRequestInput): Promise<PullRequestOutcome>;
}

const TIMEOUT_MS = 10 * 60_000;

/**
 * Every git this service runs (review 5): no system, global or HOME configuration (so no
 * operator `url.*.insteadOf` turns a vetted remote into another, no filter or hook it defines),
 * no proxy, and git-lfs never fetches on checkout.
 */
const ISOLATED = { ...ISOLATED_GIT_ENV, GIT_LFS_SKIP_SMUDGE: '1' };

function gitTail(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('hint:'))
    .slice(-6)
    .join('\n');
}

export class PullRequestService implements PullRequestOpener {
  constructor(private readonly settings: PullRequestSettings) {}

  async open(input: OpenPullRequestInput): Promise<PullRequestOutcome> {
    if (input.diff.trim() === '') {
      throw new BerthError(
        'invalid_input',
        'the attempt changed nothing; there is nothing to push',
      );
    }
    if (isCutDiff(input.diff)) {
      throw new BerthError(
        'invalid_input',
        'the diff was cut at its size limit, so it cannot be pushed whole; nothing was pushed',
      );
    }
    // Before anything runs: a diff not shaped like Berth's is refused (diff-headers.ts).
    let named: Set<string>;
    let paths: string[];
    try {
      const headers = await readDiffHeadersAsync(input.diff);
      named = new Set(diffPathBytes(headers));
      paths = diffPaths(headers);
    } catch (error) {
      if (!(error instanceof BerthError)) throw error;
      throw new BerthError('invalid_input', `${error.message}; nothing was pushed`, error.details);
    }
    const signal = input.signal
      ? AbortSignal.any([input.signal, AbortSignal.timeout(TIMEOUT_MS)])
      : AbortSignal.timeout(TIMEOUT_MS);
    const location = parseRepositoryLocation(
      input.repository,
      this.settings.allowLocalRepositories,
    );
    const github =
      parseGitHubRemote(input.repository, {
        apiUrl: this.settings.githubApiUrl,
        remotes: this.settings.githubRemotes,
      }) ??
      parseGitHubRemote(location.location, {
        apiUrl: this.settings.githubApiUrl,
        remotes: this.settings.githubRemotes,
      });
    const remote = location.location;
    const branch = input.pushTo ?? `berth/${input.taskId}`;
    if (
      github !== undefined &&
      input.credentials === undefined &&
      location.credentials === undefined &&
      this.settings.githubToken !== undefined &&
      !githubRepositoryAllowed(github, this.settings.githubRepositories ?? [])
    ) {
      throw new BerthError(
        'forbidden',
        `the server's GitHub token may not push to ${github.owner}/${github.repo}: BERTH_GITHUB_REPOSITORIES does not list it (give the environment repository.credentials, or ask the operator to add it); nothing was pushed`,
        { repository: `${github.owner}/${github.repo}` },
      );
    }

    const dir = mkdtempSync(join(tmpdir(), 'berth-pr-'));
    const work = join(dir, 'repo');
    const patch = join(dir, 'attempt.diff');
    let ssh: SshKeySession | undefined;
    try {
      // An ssh remote: the environment's key, on this host for this push only, inside the try so
      // every failure from here on removes it (ssh-key-session.ts).
      ssh =
        location.kind === 'ssh'
          ? await SshKeySession.open(
              remote,
              input.credentials,
              this.settings.knownHostsDir !== undefined && input.environmentId !== undefined
                ? join(this.settings.knownHostsDir, input.environmentId)
                : undefined,
            )
          : undefined;
      let pinned = '';
      if (ssh) {
        const target = await vetSshTarget(remote, this.settings.addressPolicy ?? {}, signal);
        if (!target.ok) {
          throw new BerthError(
            'forbidden',
            `could not push to the ssh repository ${remote}: its address is refused (${target.reason}); the server connects to public addresses only, and to a private or loopback one its operator allows with BERTH_SETUP_ALLOW (the server's own addresses never); nothing was pushed`,
            { remote },
          );
        }
        pinned = target.sshOptions;
      }
      // ssh: the vetted address (pinned), ssh and nothing else, no redirect.
      let auth = ssh
        ? {
            args: [
              '-c',
              'protocol.allow=never',
              '-c',
              'protocol.ssh.allow=always',
              '-c',
              'http.followRedirects=false',
            ],
            env: { ...ssh.env, GIT_SSH_COMMAND: `${ssh.env.GIT_SSH_COMMAND ?? 'ssh'} ${pinned}` },
          }
        : this.auth(location, github, input.credentials);
      // https, http, git://: only the vetted address, no redirect, no other protocol, no operator
      // git configuration, for the clone and every later command that talks to the remote.
      let cloneFrom = remote;
      if (location.kind === 'remote') {
        const target = await vetHttpTarget(remote, this.settings.addressPolicy ?? {}, signal);
        if (!target.ok) {
          throw new BerthError(
            'forbidden',
            `could not push to ${remote}: its address is refused (${target.reason}); the server connects to public addresses only, and to a private or loopback one its operator allows with BERTH_SETUP_ALLOW (the server's own addresses never); nothing was pushed`,
            { remote },
          );
        }
        auth = { args: [...target.args, ...auth.args], env: { ...target.env, ...auth.env } };
        cloneFrom = target.url;
      }
      const safe = [
        '-c',
        'core.hooksPath=/dev/null',
        '-c',
        'commit.gpgSign=false',
        '-c',
        'credential.helper=',
        '-c',
        'core.fsmonitor=false',
      ];
      const cloned = await runGit(
        [...safe, ...auth.args, 'clone', '-q', '--no-checkout', '--', cloneFrom, work],
        { cwd: dir, env: { ...ISOLATED, ...auth.env }, signal },
      );
      if (cloned.code !== 0 && location.kind === 'remote') {
        // git's message would tell the caller whether anything answered at that address and port
        // (a scan): it goes to the server's log only.
        (this.settings.logger ?? createLogger('warn')).warn(
          { remote, git: gitTail(cloned.stderr) },
          `task pr: could not clone ${remote}`,
        );
        throw new BerthError(
          'remote_error',
          `could not clone ${remote} (no answer, not a repository, or its credentials refused: git's message is in the server's log); nothing was pushed`,
          { remote },
        );
      }
      if (cloned.code !== 0) {
        throw new BerthError(
          'remote_error',
          `could not clone ${remote}: ${gitTail(cloned.stderr)}; nothing was pushed`,
          { remote },
        );
      }
      const git = (args: string[], withAuth = false) =>
        runGit([...safe, ...(withAuth ? auth.args : []), ...args], {
          cwd: work,
          env: { ...ISOLATED, ...(withAuth ? auth.env : {}) },
          signal,
        });
      /** Without credentials, stdout read as bytes: paths compared as git has them. */
      const gitBytes = (args: string[]) =>
        runGit([...safe, ...args], { cwd: work, env: ISOLATED, encoding: 'latin1', signal });
      const checkout = await git(['checkout', '-q', '--detach', input.baseCommit]);
      if (checkout.code !== 0) {
        throw new BerthError(
          'conflict',
          `the repository ${remote} does not have commit ${input.baseCommit.slice(0, 12)} the attempt started from; nothing was pushed`,
          { remote, baseCommit: input.baseCommit },
        );
      }
      // A directory made to look like a git repository, with what the base commit has there.
      refusePlantedRepository(paths, work, 'nothing was pushed');
      writeFileSync(patch, input.diff);
      await checkGitReading(gitBytes, patch, named, 'nothing was pushed');
      const applied = await git(['apply', '--index', '--binary', '--', patch]);
      if (applied.code !== 0) {
        throw new BerthError(
          'conflict',
          `the diff does not apply to ${input.baseCommit.slice(0, 12)}: ${gitTail(applied.stderr)}; nothing was pushed`,
        );
      }
      const author = this.settings.gitAuthor;
      await runGitOk(
        [
          ...safe,
          '-c',
          `user.name=${author.name}`,
          '-c',
          `user.email=${author.email}`,
          'commit',
          '-q',
          '--no-verify',
          '-F',
          '-',
        ],
        {
          cwd: work,
          signal,
          input: input.commitMessage.endsWith('\n')
            ? input.commitMessage
            : `${input.commitMessage}\n`,
          env: {
            ...ISOLATED,
            GIT_AUTHOR_NAME: author.name,
            GIT_AUTHOR_EMAIL: author.email,
            GIT_COMMITTER_NAME: author.name,
            GIT_COMMITTER_EMAIL: author.email,
          },
        },
        'could not commit the diff',
      );
      const commit = (
        await runGitOk(['rev-parse', 'HEAD'], { cwd: work, env: ISOLATED, signal }, 'rev-parse')
      ).trim();
      await this.checkCommit(gitBytes, input, named);

      // The branch's value on the remote right now: the push replaces exactly that (or creates it).
      const listed = await git(['ls-remote', '--', 'origin', `refs/heads/${branch}`], true);
      if (listed.code !== 0) {
        throw new BerthError(
          'remote_error',
          `could not read ${remote}: ${gitTail(listed.stderr)}; nothing was pushed`,
          { remote },
        );
      }
      const expected = listed.stdout.split(/\s+/)[0] ?? '';
      // Onto a pull request's branch: a fast-forward or nothing (someone pushed since: refused).
      const pushed = await git(
        input.pushTo !== undefined
          ? ['push', '--porcelain', 'origin', `HEAD:refs/heads/${branch}`]
          : [
              'push',
              '--porcelain',
              `--force-with-lease=refs/heads/${branch}:${expected}`,
              'origin',
              `HEAD:refs/heads/${branch}`,
            ],
        true,
      );
      if (pushed.code !== 0) {
        throw new BerthError(
          'remote_error',
          `the remote ${remote} refused the push of ${branch}: ${gitTail(pushed.stderr + '\n' + pushed.stdout)}; nothing was pushed`,
          {
            remote,
            branch,
          },
        );
      }
      const done = { branch, remote, commit, base: input.base };
      if (github === undefined || input.pushTo !== undefined) return { ...done, pullRequest: null };
      const pullRequest = await this.openOrUpdate(github, input, branch, remote, signal);
      return { ...done, pullRequest };
    } finally {
      await ssh?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * The commit changes exactly the paths the diff names, and nothing under `.github/workflows/`
   * (or `.github` itself, a symlink) unless the push allows workflows.
   */
  private async checkCommit(
    git: (args: string[]) => Promise<GitResult>,
    input: OpenPullRequestInput,
    named: ReadonlySet<string>,
  ): Promise<void> {
    const listed = await git([
      'diff',
      '--name-only',
      '-z',
      '--no-renames',
      input.baseCommit,
      'HEAD',
      '--',
    ]);
    const changed = listed.stdout.split('\0').filter((p) => p !== '');
    const foreign = changed.filter((p) => !named.has(p)).map(shownPath);
    if (listed.code !== 0 || foreign.length > 0) {
      throw new BerthError(
        'internal',
        `the commit changes files the diff does not name (${foreign.slice(0, 5).join(', ')}); nothing was pushed`,
      );
    }
    if (input.allowWorkflows === true) return;
    const added = await git([
      'diff',
      '--name-only',
      '-z',
      '--no-renames',
      '--diff-filter=d',
      input.baseCommit,
      'HEAD',
      '--',
    ]);
    // `.github` or `.github/workflows` themselves too: a symlink or a gitlink there brings
    // workflow files with it (any case: be strict, though GitHub reads the exact name).
    const workflows = added.stdout
      .split('\0')
      .filter((p) => /^\.github(?:$|\/workflows(?:$|\/))/i.test(p))
      .map(shownPath);
    if (workflows.length > 0) {
      throw new BerthError(
        'invalid_input',
        `the diff adds or changes ${workflows.slice(0, 5).join(', ')}: workflows run on the forge as soon as they are pushed, before anyone reviews them. Review them, then push with --allow-workflows (API: allowWorkflows); nothing was pushed`,
        { workflows },
      );
    }
  }

  private async openOrUpdate(
    repo: GitHubRepository,
    input: OpenPullRequestInput,
    branch: string,
    remote: string,
    signal: AbortSignal,
  ): Promise<PullRequest & { created: boolean }> {
    const pushed = `the branch ${branch} was pushed to ${remote}`;
    // The environment's token first (it may reach only its own repositories), then the server's.
    const serverToken = githubRepositoryAllowed(repo, this.settings.githubRepositories ?? [])
      ? this.settings.githubToken
      : undefined;
    const token = input.credentials?.password ?? serverToken;
    if (token === undefined) {
      throw new BerthError(
        'remote_error',
        `${pushed}; the pull request was not opened: no GitHub token is configured (the environment's repository.credentials, or BERTH_GITHUB_TOKEN)`,
        {
          branch,
          pushed: true,
        },
      );
    }
    const client = new GitHubClient(this.settings.githubApiUrl, token);
    const fields = { title: input.title, body: input.body };
    // Into another repository of the network (a fork): the head is named with its owner.
    const into = input.pullInto?.repository ?? repo;
    const head = input.pullInto ? `${repo.owner}:${branch}` : branch;
    const base = input.pullInto?.base ?? input.base;
    let existing: PullRequest | undefined;
    try {
      existing = await client.findOpenPull(into, branch, signal, repo.owner);
    } catch (error) {
      throw this.after(pushed, 'the pull request was not opened', error, branch);
    }
    if (existing) {
      try {
        return {
          ...(await client.updatePull(into, existing.number, fields, signal)),
          created: false,
        };
      } catch (error) {
        throw this.after(pushed, `pull request #${existing.number} was not updated`, error, branch);
      }
    }
    try {
      const created = await client.createPull(
        into,
        { ...fields, head, base, draft: input.draft },
        signal,
      );
      return { ...created, created: true };
    } catch (error) {
      throw this.after(pushed, 'the pull request was not opened', error, branch);
    }
  }

  private after(pushed: string, notDone: string, error: unknown, branch: string): BerthError {
    const e = toBerthError(error);
    return new BerthError(
      'remote_error',
      `${pushed}; ${notDone}: ${e.message}`,
      { ...e.details, branch, pushed: true },
      { cause: error },
    );
  }

  /**
   * Credentials for git over HTTP(S), for the git processes that talk to the remote: the
   * environment's, else those written in the URL, else the server's GitHub token for a GitHub
   * remote (as `x-access-token`).
   */
  private auth(
    location: ReturnType<typeof parseRepositoryLocation>,
    github: GitHubRepository | undefined,
    credentials: GitCredentials | undefined,
  ): { args: string[]; env: Record<string, string> } {
    if (location.kind !== 'remote' || !/^https?:/.test(location.location))
      return { args: [], env: {} };
    const own = credentials ?? location.credentials;
    if (own) return credentialArgs(own);
    const server =
      github &&
      this.settings.githubToken &&
      githubRepositoryAllowed(github, this.settings.githubRepositories ?? [])
        ? this.settings.githubToken
        : undefined;
    if (server === undefined) return { args: [], env: {} };
    // The server's token never goes over plain HTTP (anyone on the path would read it).
    if (!/^https:/i.test(location.location)) {
      throw new BerthError(
        'invalid_input',
        `the server's GitHub token is sent only over HTTPS, and ${location.location} is plain HTTP: use the https:// location; nothing was pushed`,
        { remote: location.location },
      );
    }
    return credentialArgs({ username: 'x-access-token', password: server });
  }
}
