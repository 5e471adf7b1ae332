import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { classifyRepositoryUrl } from '../domain/environment/repository-url.js';
import {
  parseRemoteHeads,
  settleDefaultBranch,
  type RemoteHeads,
} from '../domain/environment/default-branch.js';
import { readLocalRemoteHeads } from '../git/remote-heads.js';
import type { TaskRef } from '../domain/task/task.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import type { ExecResult, OutputChunk, SandboxRuntime } from '../ports/sandbox-runtime.js';
import { SANDBOX_STATE_DIR } from './setup-script.js';
import { writeSandboxFile } from './sandbox-files.js';
import { SshKeySession } from './ssh-key-session.js';
import type { RemoteAddressPolicy } from '../git/remote-address.js';
import { vetSshTarget } from '../git/ssh-target.js';
import { ISOLATED_GIT_ENV, vetHttpTarget } from '../git/http-target.js';

/**
 * Checks a repository out inside a sandbox: the environment's default branch for the cache, the
 * task's branch or commit on top.
 *
 * Threat model: repository locations, branch names and commits come from users. None of them is
 * ever passed through a shell: every git call is an argv, locations come after `--`, branch names
 * and commits are validated (no leading "-", no revision syntax) before use. Credentials for a
 * private repository reach git only through a one-shot credential helper reading variables of
 * that one exec's environment: they are never in the remote URL, `.git/config`, a file, or the
 * container's configuration. They enter a sandbox only for the first clone, into a sandbox made
 * from the base image that no script has run in yet: every later fetch (`checkoutRef`: after
 * setup on a cache miss, from a cache image, which setup made) runs on the host and enters the
 * sandbox as a bundle (`bundleRemoteRepository`), because a setup script may have planted its
 * own `git` (or anything git runs) there, and the token would be its. That host-side fetch
 * connects only to the URL host's vetted address, follows no redirect and reads no operator git
 * configuration (http-target.ts; the URL is a token holder's and may name the server itself). A local path is read on the host (only when the server allows it)
 * and enters the sandbox as a git bundle, so the sandbox never sees a host path. The host-side
 * `git bundle` trusts the local repository as much as the server's operator who allowed it.
 *
 * An ssh repository is fetched on the host too (`git clone --bare`, then a bundle, see
 * `bundleSshRepository`): the private key goes to a 0600 file in a fresh 0700 temp directory for
 * that one clone and is deleted right after, so the sandbox never holds a key and never runs ssh.
 * ssh runs without the operator's config, agent or default keys (`-F /dev/null`,
 * `IdentitiesOnly`, `IdentityAgent none`), in batch mode, and checks the server's host key against
 * the environment's `knownHosts` (strict) or else a per-environment file trusted on first use.
 */

export interface GitCredentials {
  username: string;
  /** The token (https) or the private key (ssh). */
  password: string;
  /** ssh only: the server's accepted host keys (known_hosts lines); strict checking when set. */
  knownHosts?: string | undefined;
}

export interface CheckoutContext {
  runtime: SandboxRuntime;
  sandboxId: string;
  /** The workspace inside the sandbox (the repository's root). */
  workdir: string;
  /** A URL (https, ssh, git) or an absolute local path / file:// URL. */
  repository: string;
  defaultBranch: string;
  allowLocalRepositories: boolean;
  credentials?: GitCredentials | undefined;
  signal?: AbortSignal | undefined;
  onOutput?: ((chunk: OutputChunk) => void) | undefined;
  /** A bundle of a local or ssh repository made ahead of time (`bundleLocalRepository`, `bundleSshRepository`). */
  bundle?: Promise<Buffer> | undefined;
  /** ssh without `knownHosts`: the environment's file of host keys trusted on first use. */
  knownHostsFile?: string | undefined;
  /** Where the host may connect for an ssh fetch or a host-side https/http/git:// fetch. */
  addressPolicy?: RemoteAddressPolicy | undefined;
  /** Time limit of each git command (clone of a big repository may take long). */
  timeoutMs?: number;
}

export interface CheckoutResult {
  commit: string;
  branch: string | null;
}

const BRANCH_INVALID = /[\s\x00-\x1f\x7f~^:?*[\\]|\.\.|@\{|\/\/|^\/|\/$|\.lock$|\.$|^@$/;
const SHA = /^[0-9a-f]{4,64}$/i;
const BUNDLE_PATH = `${SANDBOX_STATE_DIR}/repo.bundle`;
/** How long an ssh host's name may take to resolve before its fetch. */
const SSH_LOOKUP_TIMEOUT_MS = 20_000;

/**
 * The vetted target of a remote's address (`vet`: vetSshTarget or vetHttpTarget), looked up
 * within SSH_LOOKUP_TIMEOUT_MS; a refused address fails the checkout before git runs.
 */
export async function vetRemoteTarget<T extends { ok: true }>(
  vet: (
    url: string,
    policy: RemoteAddressPolicy,
    signal: AbortSignal,
  ) => Promise<T | { ok: false; reason: string }>,
  url: string,
  policy: RemoteAddressPolicy | undefined,
  signal: AbortSignal | undefined,
): Promise<T> {
  const target = await vet(
    url,
    policy ?? {},
    AbortSignal.any([AbortSignal.timeout(SSH_LOOKUP_TIMEOUT_MS), ...(signal ? [signal] : [])]),
  );
  if (!target.ok) {
    throw new BerthError(
      'task_failed',
      `its address is refused (${target.reason}); the server connects to public addresses only, and to a private or loopback one its operator allows with BERTH_SETUP_ALLOW (the server's own addresses never)`,
      { reason: 'checkout' },
    );
  }
  return target;
}

export function validateBranch(branch: string): string {
  if (branch === '' || branch.length > 255)
    throw new BerthError('invalid_input', 'the branch name is empty or too long');
  if (branch.startsWith('-'))
    throw new BerthError('invalid_input', `the branch "${branch}" starts with "-"`);
  if (BRANCH_INVALID.test(branch))
    throw new BerthError('invalid_input', `"${branch}" is not a valid git branch name`);
  return branch;
}

export function validateSha(sha: string): string {
  if (!SHA.test(sha)) {
    throw new BerthError(
      'invalid_input',
      `"${sha}" is not a commit SHA (4 to 64 hexadecimal digits)`,
    );
  }
  return sha.toLowerCase();
}

export interface RepositoryLocation {
  /** `ssh` and `local` are fetched on the host and enter the sandbox as a bundle. */
  kind: 'remote' | 'local' | 'ssh';
  /** For a remote: the URL without credentials. For a local one: the host path. */
  location: string;
  /** Credentials that were written into the URL (`https://user:token@host/…`). */
  credentials?: GitCredentials;
}

/** Classifies a location and takes credentials out of a URL (they must not reach the sandbox). */
export function parseRepositoryLocation(
  repository: string,
  allowLocal: boolean,
): RepositoryLocation {
  const result = classifyRepositoryUrl(repository);
  if (!result.ok) throw new BerthError('invalid_input', `repository: ${result.reason}`);
  if (result.kind === 'local') {
    if (!allowLocal) {
      throw new BerthError(
        'forbidden',
        'local-path repositories are not allowed by this server (set BERTH_ALLOW_LOCAL_REPOS=1 to allow them)',
      );
    }
    const path = repository.startsWith('file:') ? fileURLToPath(repository) : repository;
    return { kind: 'local', location: path };
  }
  if (result.kind === 'ssh') return { kind: 'ssh', location: repository };
  if (result.kind === 'https' || result.kind === 'http') {
    const url = new URL(repository);
    if (url.username !== '' || url.password !== '') {
      const credentials = {
        username: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
      };
      url.username = '';
      url.password = '';
      return { kind: 'remote', location: url.toString(), credentials };
    }
  }
  return { kind: 'remote', location: repository };
}

/**
 * `git -c …` arguments installing a credential helper that reads this git process's environment
 * only (BERTH_GIT_USERNAME/BERTH_GIT_PASSWORD, in `env`); without credentials, no helper at all.
 * git asks the helper after the server's 401 challenge, so a refusal is git's "Authentication
 * failed" for the remote, and nothing is ever stored.
 */
export function credentialArgs(credentials: GitCredentials | undefined): {
  args: string[];
  env: Record<string, string>;
} {
  if (!credentials) return { args: ['-c', 'credential.helper='], env: {} };
  return {
    args: [
      '-c',
      'credential.helper=',
      '-c',
      // The helper is git's own "!command" form; it prints the two variables, never stores them.
      'credential.helper=!f() { test "$1" = get || exit 0; printf "username=%s\\npassword=%s\\n" "$BERTH_GIT_USERNAME" "$BERTH_GIT_PASSWORD"; }; f',
    ],
    env: { BERTH_GIT_USERNAME: credentials.username, BERTH_GIT_PASSWORD: credentials.password },
  };
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** git's subcommand among its arguments (past `-c name=value` and `-C path`). */
function subcommand(args: readonly string[]): string {
  return (
    args.find((a, i) => !a.startsWith('-') && args[i - 1] !== '-c' && args[i - 1] !== '-C') ?? ''
  );
}

export async function hostGit(
  args: string[],
  signal?: AbortSignal,
  env: Record<string, string> = {},
): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-c', 'core.fsmonitor=false', ...args],
      {
        signal,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', GIT_TERMINAL_PROMPT: '0', ...env },
      },
      (error, stdout, stderr) => {
        if (error)
          reject(
            new BerthError(
              'task_failed',
              `git ${subcommand(args)} failed on the host: ${tail(stderr) || error.message}`,
              { reason: 'checkout' },
            ),
          );
        else resolve(stdout);
      },
    );
  });
}

/**
 * The commit a branch of the local repository at `path` points at on the host; undefined when
 * there is none (or the repository cannot be read: the checkout then says why).
 */
export async function localBranchHead(
  path: string,
  branch: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const ref = `refs/heads/${validateBranch(branch)}^{commit}`;
  return await hostGit(['-C', path, 'rev-parse', '--verify', '--quiet', ref], signal).then(
    (out) => (/^[0-9a-f]{40,64}$/.test(out.trim()) ? out.trim() : undefined),
    () => undefined,
  );
}

/** A bundle of every ref of the local repository at `path`, made on the host. */
export async function bundleLocalRepository(path: string, signal?: AbortSignal): Promise<Buffer> {
  try {
    await stat(join(path, '.'));
  } catch {
    throw new BerthError('task_failed', `the local repository ${path} does not exist`, {
      reason: 'checkout',
    });
  }
  const dir = await mkdtemp(join(tmpdir(), 'berth-bundle-'));
  try {
    const file = join(dir, 'repo.bundle');
    await hostGit(['-C', path, 'bundle', 'create', file, '--all'], signal);
    return await readFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface SshFetchOptions {
  /** The private key (`password`) and the optional pinned host keys. */
  credentials: GitCredentials | undefined;
  /** Without pinned host keys: the file of host keys trusted on first use (made when missing). */
  knownHostsFile?: string | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Where the host may connect (ssh-target.ts): public unicast, or the operator's
   * BERTH_SETUP_ALLOW ranges; never the machine's own addresses. Default: public only.
   */
  addressPolicy?: RemoteAddressPolicy | undefined;
}

/**
 * A bundle of every ref of the ssh repository at `url`, fetched on the host with the environment's
 * private key (see the threat model above), connecting only to the host's vetted address
 * (ssh-target.ts; a refused address fails before ssh runs). A refused key is ssh's
 * "Permission denied (publickey)", a host key that does not match is ssh's "Host key
 * verification failed", both in the error.
 */
export async function bundleSshRepository(url: string, options: SshFetchOptions): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ssh-clone-'));
  try {
    // Opened after every other temporary, inside this try: no failure leaves the key behind.
    const session = await SshKeySession.open(
      url,
      options.credentials,
      options.knownHostsFile,
    ).catch((error: unknown) => {
      const e = toBerthError(error);
      throw new BerthError('task_failed', e.message, { reason: 'checkout' });
    });
    // --bare, not --mirror: branches and tags only (a mirror of a forge would carry every pull
    // request's refs, which the sandbox never fetches).
    const mirror = join(dir, 'repo.git');
    try {
      const target = await vetRemoteTarget(
        vetSshTarget,
        url,
        options.addressPolicy,
        options.signal,
      );
      // No operator git configuration (a system `url.*.insteadOf` would turn the vetted ssh URL
      // into another), ssh only, no redirect (review 5).
      await hostGit(
        [
          '-c',
          'credential.helper=',
          '-c',
          'protocol.allow=never',
          '-c',
          'protocol.ssh.allow=always',
          '-c',
          'http.followRedirects=false',
          'clone',
          '--bare',
          '--',
          url,
          mirror,
        ],
        options.signal,
        {
          ...ISOLATED_GIT_ENV,
          ...session.env,
          GIT_SSH_COMMAND: `${session.env.GIT_SSH_COMMAND ?? 'ssh'} ${target.sshOptions}`,
        },
      );
    } catch (error) {
      if (!(error instanceof BerthError)) throw error;
      throw new BerthError(
        'task_failed',
        `could not fetch the ssh repository ${url} on the host: ${error.message.replace(/^git clone failed on the host: /, '')}`,
        { reason: 'checkout' },
      );
    } finally {
      await session.close();
    }
    const file = join(dir, 'repo.bundle');
    await hostGit(['-C', mirror, 'bundle', 'create', file, '--all'], options.signal);
    return await readFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A bundle of every branch of the remote repository at `url` (and of `sha` when it is a full
 * commit id that no branch holds), fetched on the host with the environment's credentials. Used
 * for every fetch after a setup script ran in the sandbox or in its image: the credentials never
 * enter such a sandbox (see `checkoutRef`).
 */
export async function bundleRemoteRepository(
  url: string,
  credentials: GitCredentials,
  options: {
    sha?: string | null | undefined;
    signal?: AbortSignal | undefined;
    /** Where the host may connect (http-target.ts); default: public addresses only. */
    addressPolicy?: RemoteAddressPolicy | undefined;
  } = {},
): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-fetch-'));
  try {
    const mirror = join(dir, 'repo.git');
    const cred = credentialArgs(credentials);
    await hostGit(['init', '--quiet', '--bare', mirror], options.signal);
    let fetch: (refspecs: string[]) => Promise<string> = () => Promise.resolve('');
    try {
      // Only the vetted address, no redirect, no other protocol, no operator git configuration.
      const target = await vetRemoteTarget(
        vetHttpTarget,
        url,
        options.addressPolicy,
        options.signal,
      );
      fetch = async (refspecs: string[]) =>
        await hostGit(
          [
            '-C',
            mirror,
            ...target.args,
            ...cred.args,
            'fetch',
            '--quiet',
            '--no-tags',
            '--',
            target.url,
            ...refspecs,
          ],
          options.signal,
          { ...target.env, ...cred.env },
        );
      await fetch(['+refs/heads/*:refs/heads/*']);
    } catch (error) {
      if (!(error instanceof BerthError)) throw error;
      throw new BerthError(
        'task_failed',
        `could not fetch the repository ${url} on the host: ${error.message.replace(/^git \S+ failed on the host: /, '')}`,
        { reason: 'checkout' },
      );
    }
    if (options.sha !== undefined && options.sha !== null && options.sha.length >= 40) {
      const present = await hostGit(
        ['-C', mirror, 'cat-file', '-e', `${options.sha}^{commit}`],
        options.signal,
      ).then(
        () => true,
        () => false,
      );
      if (!present) await fetch([`${options.sha}:refs/berth/commit`]).catch(() => undefined);
    }
    const file = join(dir, 'repo.bundle');
    await hostGit(['-C', mirror, 'bundle', 'create', '--quiet', file, '--all'], options.signal);
    return await readFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs git in the sandbox and fails with the tail of its output when it fails. */
async function git(
  ctx: CheckoutContext,
  args: string[],
  what: string,
  extra: { env?: Record<string, string>; workdir?: string; quiet?: boolean } = {},
): Promise<ExecResult> {
  const result = await ctx.runtime.exec(ctx.sandboxId, {
    argv: ['git', ...args],
    env: { GIT_TERMINAL_PROMPT: '0', GIT_SSH_COMMAND: 'ssh -o BatchMode=yes', ...extra.env },
    workdir: extra.workdir ?? ctx.workdir,
    timeoutMs: ctx.timeoutMs ?? 15 * 60_000,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(ctx.onOutput && !extra.quiet ? { onOutput: ctx.onOutput } : {}),
  });
  if (result.exitCode !== 0) {
    throw new BerthError(
      'task_failed',
      `${what}: ${tail(result.output) || `git exited with code ${result.exitCode}`}`,
      {
        reason: 'checkout',
        exitCode: result.exitCode,
      },
    );
  }
  return result;
}

/** What the attempt's log says about an ssh fetch's host key check. */
export function sshHostKeyNote(
  ctx: Pick<CheckoutContext, 'credentials' | 'knownHostsFile'>,
): string {
  if (ctx.credentials?.knownHosts !== undefined)
    return 'berth: fetching the ssh repository on the host (host key checked against repository.credentials.knownHosts)\n';
  return `berth: fetching the ssh repository on the host; no repository.credentials.knownHosts, so the host key is trusted on first use (kept in ${ctx.knownHostsFile ?? 'a temporary file, for this fetch only'}) and a changed key fails\n`;
}

async function putBundle(ctx: CheckoutContext, location: RepositoryLocation): Promise<void> {
  if (location.kind === 'ssh')
    ctx.onOutput?.({ stream: 'stderr', data: Buffer.from(sshHostKeyNote(ctx)) });
  const archive = await (ctx.bundle ??
    (location.kind === 'ssh'
      ? bundleSshRepository(location.location, {
          credentials: ctx.credentials,
          knownHostsFile: ctx.knownHostsFile,
          signal: ctx.signal,
          addressPolicy: ctx.addressPolicy,
        })
      : bundleLocalRepository(location.location, ctx.signal)));
  await writeSandboxFile(ctx.runtime, ctx.sandboxId, BUNDLE_PATH, archive, {
    mode: 0o600,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
}

async function removeBundle(ctx: CheckoutContext): Promise<void> {
  await ctx.runtime.exec(ctx.sandboxId, { argv: ['rm', '-f', '--', BUNDLE_PATH] });
}

/**
 * A clone of the default branch failed: when the repository has no such branch, says so with the
 * branches it has and its own default branch (its HEAD), and how to name it; otherwise rethrows
 * the clone's error. `ask` asks the repository as the clone reached it.
 */
async function explainMissingBranch(
  error: unknown,
  branch: string,
  ask: () => Promise<RemoteHeads | undefined>,
): Promise<never> {
  const heads = await ask().catch(() => undefined);
  const decision = settleDefaultBranch(branch, branch, heads);
  if (decision.ok) throw error;
  throw new BerthError(
    'task_failed',
    `could not clone the repository: ${decision.message}. Name the branch in the environment (repository: { url: …, defaultBranch: ${heads?.head ?? 'BRANCH'} }) and run berth env update`,
    { reason: 'checkout', branch },
  );
}

/** `git ls-remote --symref` of `source` run in the sandbox (with the clone's credentials). */
async function sandboxHeads(
  ctx: CheckoutContext,
  source: string,
  cred: { args: string[]; env: Record<string, string> } = { args: [], env: {} },
): Promise<RemoteHeads | undefined> {
  const asked = await ctx.runtime.exec(ctx.sandboxId, {
    argv: ['git', ...cred.args, 'ls-remote', '--symref', '--', source, 'HEAD', 'refs/heads/*'],
    env: { GIT_TERMINAL_PROMPT: '0', GIT_SSH_COMMAND: 'ssh -o BatchMode=yes', ...cred.env },
    workdir: '/',
    timeoutMs: 60_000,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  return asked.exitCode === 0 ? parseRemoteHeads(asked.stdout) : undefined;
}

/**
 * Clones the repository's default branch into the workspace (a sandbox made from the base image).
 * Returns the commit checked out.
 */
export async function cloneRepository(ctx: CheckoutContext): Promise<CheckoutResult> {
  const branch = validateBranch(ctx.defaultBranch);
  const location = parseRepositoryLocation(ctx.repository, ctx.allowLocalRepositories);
  const credentials = ctx.credentials ?? location.credentials;
  if (location.kind !== 'remote') {
    await putBundle(ctx, location);
    try {
      await git(
        ctx,
        ['clone', '--branch', branch, '--', BUNDLE_PATH, ctx.workdir],
        'could not clone the repository',
        {
          workdir: '/',
        },
      ).catch((error: unknown) =>
        explainMissingBranch(error, branch, () =>
          // A local repository is asked on the host (a bundle does not say where HEAD points).
          location.kind === 'local'
            ? readLocalRemoteHeads(location.location, ctx.signal)
            : sandboxHeads(ctx, BUNDLE_PATH),
        ),
      );
    } finally {
      await removeBundle(ctx);
    }
  } else {
    const cred = credentialArgs(credentials);
    await git(
      ctx,
      [...cred.args, 'clone', '--branch', branch, '--', location.location, ctx.workdir],
      'could not clone the repository',
      { env: cred.env, workdir: '/' },
    ).catch((error: unknown) =>
      explainMissingBranch(error, branch, () => sandboxHeads(ctx, location.location, cred)),
    );
  }
  const head = await git(ctx, ['rev-parse', 'HEAD'], 'could not read the checked-out commit', {
    quiet: true,
  });
  return { commit: head.stdout.trim(), branch };
}

/**
 * Fetches from the repository and checks out the task's branch or commit (the default branch when
 * neither is given), on top of whatever the workspace holds (a fresh clone or a cache entry).
 */
export async function checkoutRef(ctx: CheckoutContext, ref: TaskRef): Promise<CheckoutResult> {
  if (ref.branch !== undefined && ref.sha !== undefined) {
    throw new BerthError('invalid_input', 'give a branch or a commit SHA, not both');
  }
  const branch = ref.sha === undefined ? validateBranch(ref.branch ?? ctx.defaultBranch) : null;
  const sha = ref.sha === undefined ? null : validateSha(ref.sha);
  const location = parseRepositoryLocation(ctx.repository, ctx.allowLocalRepositories);
  const credentials = ctx.credentials ?? location.credentials;
  // The sandbox here ran a setup script, or was made from an image one ran in: anything may
  // stand in for git there (a /usr/local/bin/git first on PATH). So no credential enters it: a
  // repository that needs one is fetched on the host and enters as a bundle, like a local or an
  // ssh one, and the sandbox's git fetches from that file with no credentials at all.
  const bundled = location.kind !== 'remote' || credentials !== undefined;
  const source = bundled ? BUNDLE_PATH : 'origin';
  const fetch = async (refspecs: string[], what: string) =>
    await git(
      ctx,
      ['-c', 'credential.helper=', 'fetch', '--no-tags', source, '--', ...refspecs],
      what,
    );

  if (location.kind === 'remote' && credentials !== undefined) {
    await writeSandboxFile(
      ctx.runtime,
      ctx.sandboxId,
      BUNDLE_PATH,
      await bundleRemoteRepository(location.location, credentials, {
        sha,
        signal: ctx.signal,
        addressPolicy: ctx.addressPolicy,
      }),
      { mode: 0o600, ...(ctx.signal ? { signal: ctx.signal } : {}) },
    );
  } else if (bundled) await putBundle(ctx, location);
  try {
    if (branch !== null) {
      await fetch(
        [`+refs/heads/${branch}:refs/remotes/origin/${branch}`],
        `could not fetch the branch "${branch}"`,
      );
    } else {
      await fetch(
        // A commit no branch holds comes in a host-made bundle as refs/berth/commit.
        [
          '+refs/heads/*:refs/remotes/origin/*',
          ...(sha !== null && bundled ? ['+refs/berth/*:refs/berth/*'] : []),
        ],
        'could not fetch the repository',
      );
    }
    if (sha !== null) {
      const present = await ctx.runtime.exec(ctx.sandboxId, {
        argv: ['git', 'cat-file', '-e', `${sha}^{commit}`],
        workdir: ctx.workdir,
      });
      if (present.exitCode !== 0) {
        if (sha.length < 40 || bundled) {
          throw new BerthError(
            'task_failed',
            `the commit ${sha} does not exist in the repository`,
            { reason: 'checkout' },
          );
        }
        await fetch([sha], `the commit ${sha} does not exist in the repository`);
      }
    }
  } finally {
    if (bundled) await removeBundle(ctx);
  }
  const target =
    branch !== null ? ['-B', branch, `refs/remotes/origin/${branch}`] : ['--detach', sha ?? 'HEAD'];
  const what = `could not check out ${branch !== null ? `"${branch}"` : sha}`;
  const plain = await ctx.runtime.exec(ctx.sandboxId, {
    argv: ['git', 'checkout', ...target, '--'],
    workdir: ctx.workdir,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  if (plain.exitCode !== 0) {
    // Files the setup script changed (a lock file) may stand in the way; the task's ref wins.
    ctx.onOutput?.({
      stream: 'stderr',
      data: Buffer.from(
        'berth: local changes from the setup script conflict with the checkout; discarding them\n',
      ),
    });
    await git(ctx, ['checkout', '--force', ...target, '--'], what);
  }
  const head = await git(ctx, ['rev-parse', 'HEAD'], 'could not read the checked-out commit', {
    quiet: true,
  });
  return { commit: head.stdout.trim(), branch };
}
