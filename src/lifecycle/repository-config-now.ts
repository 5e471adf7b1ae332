import { execFile } from 'node:child_process';
import { BerthError } from '../errors/berth-error.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import {
  mergeChain,
  templateChain,
  type TemplateLookup,
} from '../domain/environment/environment-template.js';
import { canonicalJson } from '../domain/cache/canonical-json.js';
import {
  REPOSITORY_CONFIG_FIELDS,
  parseRepositoryConfig,
  repositoryConfigDigest,
  specWithRepositoryConfig,
} from '../domain/environment/repository-config.js';
import { ENVIRONMENT_YAML_LIMITS } from '../domain/environment/environment-yaml.js';
import { classifyRepositoryUrl } from '../domain/environment/repository-url.js';
import { localBranchHead, parseRepositoryLocation } from './checkout.js';
import { dockerfileOf } from './dockerfile-image.js';
import { withRemoteBranchHead, type RemoteFetchAccess } from './remote-branch-head.js';

/**
 * The repository file of an environment with `repository.config`, read at the commit its cache
 * is built from (the default branch's head), before the cache key: its fields merged into the
 * spec the attempt runs with, its content (digest) part of the key. Read on the server's machine
 * with git's plumbing (argv only, no hooks, no working tree: `cat-file` of the blob at the
 * commit; a symlink is its target's text, never followed; at most the size of an environment
 * file): a local repository in place, an https, http, git:// or ssh one from a temporary bare
 * repository that the branch's head was fetched into through the checkout's vetted host-side
 * fetch (remote-branch-head.ts: the vetted address only, the environment's credentials).
 *
 * A task on another branch reads that branch's file too (same reader, same refusals; a bad file
 * fails the attempt): its fields run maintenance and the agent phase, while the cache key and
 * setup stay the default branch's (BUILT_FROM_CACHE), and the attempt's log says which differ.
 */

export interface RepositoryConfigNow {
  spec: EnvironmentSpec;
  /** For the cache key: the file's path and the digest of its content. */
  file: { path: string; digest: string };
  commit: string;
  /**
   * When the task's branch has another file than the default branch's: what the attempt logs
   * (the branch's file is used for maintenance and the agent; see `cacheSpec`), or, when the
   * branch has no file, the warning that the default branch's runs for every phase.
   */
  branchNote?: { kind: 'log' | 'warning'; text: string };
  /**
   * When the task's branch has another file: the default branch's spec, which the cache key and
   * setup are computed from (`spec` then holds the branch's fields for maintenance and the agent,
   * with the default branch's BUILT_FROM_CACHE fields).
   */
  cacheSpec?: EnvironmentSpec;
}

/**
 * What the cache entry is built from and cannot change after it without a rebuild: the base
 * image, the tool versions baked into it and the setup script. A branch's file takes the default
 * branch's for these. Every other field of a repository file applies after the cache: maintenance,
 * env, internet (the lockdown), services, verify and resources (the sandbox's limits and time;
 * they are not in the cache key).
 */
export const BUILT_FROM_CACHE = ['image', 'versions', 'setup'] as const;

/**
 * What a branch's file may not change: the grants (what the sandbox may reach on the internet,
 * and what it may consume). Whoever can push a branch (a fork's pull request included) could
 * otherwise open the internet to the agent of every task on that branch; these stay the default
 * branch's, reviewed like the rest of it.
 */
export const DEFAULT_BRANCH_GRANTS = ['internet', 'resources'] as const;

function fieldsThatDiffer(a: EnvironmentSpec, b: EnvironmentSpec): string[] {
  const left = a as unknown as Record<string, unknown>;
  const right = b as unknown as Record<string, unknown>;
  return REPOSITORY_CONFIG_FIELDS.filter(
    (field) => canonicalJson(left[field] ?? null) !== canonicalJson(right[field] ?? null),
  );
}

/** A branch without the file, or the branch not in the repository: not a bad file. */
function isMissing(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /: not in the repository at commit |the repository has no branch "/.test(message);
}

function git(args: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-c', 'core.fsmonitor=false', ...args],
      {
        ...(signal ? { signal } : {}),
        maxBuffer: ENVIRONMENT_YAML_LIMITS.maxBytes + 1024,
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', GIT_TERMINAL_PROMPT: '0' },
      },
      (error, stdout) => (error ? reject(new Error(error.message)) : resolve(stdout)),
    );
  });
}

function refused(path: string, message: string): BerthError {
  return new BerthError('invalid_environment', `repository.config: ${path}: ${message}`, {
    issues: [{ path: 'repository.config', message: `${path}: ${message}` }],
  });
}

/**
 * The file's text at the head of `branch`, and that commit: of a local repository read in place,
 * of an https, http, git:// or ssh one fetched on the host first (remote-branch-head.ts, with
 * `remote`'s credentials and address policy; the temporary repository removed after).
 */
export async function readRepositoryFile(
  repository: string,
  branch: string,
  path: string,
  allowLocal: boolean,
  signal?: AbortSignal,
  remote: RemoteFetchAccess = {},
): Promise<{ text: string; commit: string }> {
  const location = parseRepositoryLocation(repository, allowLocal);
  if (location.kind === 'local') {
    const commit = await localBranchHead(location.location, branch, signal);
    return await fileAtCommit(location.location, commit, branch, path, signal);
  }
  return await withRemoteBranchHead(location, branch, remote, signal, (gitDir, commit) =>
    fileAtCommit(gitDir, commit, branch, path, signal),
  );
}

/** The blob at `commit:path` of the repository at `gitDir`, refused when missing, not a file, or too big. */
async function fileAtCommit(
  gitDir: string,
  commit: string | undefined,
  branch: string,
  path: string,
  signal?: AbortSignal,
): Promise<{ text: string; commit: string }> {
  if (commit === undefined)
    throw refused(path, `the repository has no branch "${branch}" to read the file from`);
  const object = `${commit}:${path}`;
  const type = await git(['-C', gitDir, 'cat-file', '-t', object], signal).catch(() => undefined);
  if (type?.trim() !== 'blob')
    throw refused(
      path,
      type === undefined
        ? `not in the repository at commit ${commit.slice(0, 12)} (branch ${branch})`
        : `not a file at commit ${commit.slice(0, 12)} (a ${type.trim()})`,
    );
  const size = Number((await git(['-C', gitDir, 'cat-file', '-s', object], signal)).trim());
  if (!(size <= ENVIRONMENT_YAML_LIMITS.maxBytes))
    throw refused(
      path,
      `the file is ${size} bytes; at most ${ENVIRONMENT_YAML_LIMITS.maxBytes} are accepted`,
    );
  const text = await git(['-C', gitDir, 'cat-file', 'blob', object], signal);
  return { text, commit };
}

/**
 * The spec an attempt runs with for an environment with `repository.config`: templates, then the
 * file's fields, then what the environment wrote (`written`; the stored spec when none was kept).
 * A bad file fails here, before any sandbox, with the field path, line and column.
 */
export async function repositoryConfigNow(
  environment: { spec: EnvironmentSpec },
  written: unknown,
  lookup: TemplateLookup,
  options: {
    allowLocal: boolean;
    signal?: AbortSignal;
    taskBranch?: string | undefined;
    /** An https, http, git:// or ssh repository's credentials and address policy. */
    remote?: RemoteFetchAccess;
  },
): Promise<RepositoryConfigNow | undefined> {
  const { spec } = environment;
  const path = spec.repository.config;
  if (path === undefined) return undefined;
  const { text, commit } = await readRepositoryFile(
    spec.repository.url,
    spec.repository.defaultBranch,
    path,
    options.allowLocal,
    options.signal,
    options.remote,
  );
  const fields = parseRepositoryConfig(text, path);
  const templates =
    spec.extends === undefined
      ? {}
      : mergeChain(await templateChain(spec.extends, lookup, 'environment'));
  const own =
    written !== null && typeof written === 'object' && !Array.isArray(written)
      ? (written as Record<string, unknown>)
      : (spec as unknown as Record<string, unknown>);
  const digest = repositoryConfigDigest(text);
  const defaultSpec = specWithRepositoryConfig(spec, templates, fields, own, path);
  const base = { file: { path, digest }, commit };
  const branch = options.taskBranch;
  const main = spec.repository.defaultBranch;
  if (branch === undefined || branch === main) return { ...base, spec: defaultSpec };
  // The task's branch's file: the same reader and refusals; a bad file fails the attempt here.
  const other = await readRepositoryFile(
    spec.repository.url,
    branch,
    path,
    options.allowLocal,
    options.signal,
    options.remote,
  ).catch((error: unknown) => {
    if (isMissing(error)) return undefined;
    throw error;
  });
  if (other === undefined)
    return {
      ...base,
      spec: defaultSpec,
      branchNote: {
        kind: 'warning',
        text: `${path} differs on the task's branch ${branch} (not there) from ${main}'s: this attempt runs ${main}'s for every phase (berth env diff --branch ${branch} shows the difference)`,
      },
    };
  if (repositoryConfigDigest(other.text) === digest) return { ...base, spec: defaultSpec };
  const branchSpec = specWithRepositoryConfig(
    spec,
    templates,
    parseRepositoryConfig(other.text, path),
    own,
    path,
  );
  const differ = fieldsThatDiffer(defaultSpec, branchSpec);
  const isGrant = (field: string) => (DEFAULT_BRANCH_GRANTS as readonly string[]).includes(field);
  const isBuilt = (field: string) => (BUILT_FROM_CACHE as readonly string[]).includes(field);
  const used = differ.filter((field) => !isBuilt(field) && !isGrant(field));
  const kept = differ.filter(isBuilt);
  const grants = differ.filter(isGrant);
  const phaseSpec: EnvironmentSpec = {
    ...branchSpec,
    image: defaultSpec.image,
    versions: defaultSpec.versions,
    internet: defaultSpec.internet,
    resources: defaultSpec.resources,
  };
  if (defaultSpec.setup === undefined) delete phaseSpec.setup;
  else phaseSpec.setup = defaultSpec.setup;
  const parts = [
    `repository file ${path} differs on branch ${branch} (commit ${other.commit.slice(0, 12)}): maintenance and agent use the branch's`,
    used.length > 0 ? ` (${used.join(', ')})` : ' (no field that applies after the cache differs)',
    kept.length > 0
      ? `; ${kept.join(', ')} ${kept.length === 1 ? 'stays' : 'stay'} ${main}'s: the cache is built from ${main}'s file (a rebuild would be needed)`
      : '',
    grants.length > 0
      ? `; ${grants.join(', ')} ${grants.length === 1 ? 'stays' : 'stay'} ${main}'s: a branch may not widen what the sandbox may reach or use`
      : '',
  ];
  return {
    ...base,
    spec: phaseSpec,
    cacheSpec: defaultSpec,
    branchNote: { kind: 'log', text: parts.join('') },
  };
}

/**
 * When an environment with `repository.config` is written: for a local repository whose default
 * branch exists, the file must be there and valid (refused with the path, or the field path,
 * line and column). A branch not there yet, and an https, http, git:// or ssh repository's file,
 * are left to the attempt (read at the default branch's head before the cache key).
 */
export async function checkRepositoryFile(
  spec: EnvironmentSpec,
  allowLocal: boolean,
): Promise<void> {
  const kind = classifyRepositoryUrl(spec.repository.url);
  // `image: { dockerfile }` is built from the repository too: local repositories only.
  const dockerfile = dockerfileOf(spec.image);
  if (dockerfile !== undefined && !(kind.ok && kind.kind === 'local'))
    throw new BerthError(
      'invalid_environment',
      `image.dockerfile: ${dockerfile}: an image is built from local repositories only in this version (not built for https, http, git and ssh repositories)`,
      { issues: [{ path: 'image', message: 'built from local repositories only' }] },
    );
  const path = spec.repository.config;
  // A remote repository's file is read at the attempt (its credentials and address policy are
  // the attempt's); a path outside the repository is refused by the schema.
  if (path === undefined || !(kind.ok && kind.kind === 'local')) return;
  if (!allowLocal) return; // the server's rules refuse the repository itself
  const location = parseRepositoryLocation(spec.repository.url, true);
  if ((await localBranchHead(location.location, spec.repository.defaultBranch)) === undefined)
    return;
  const { text } = await readRepositoryFile(
    spec.repository.url,
    spec.repository.defaultBranch,
    path,
    true,
  );
  parseRepositoryConfig(text, path);
}

/** One field of `berth env diff`: where it is set, and which value runs. */
export interface RepositoryFileField {
  field: string;
  /** `same`, `environment` (only the stored environment), `file` (only the file), `both` (differ: the environment's wins). */
  state: 'same' | 'environment' | 'file' | 'both';
  environment?: unknown;
  file?: unknown;
}

/**
 * `berth env diff NAME [--branch B]`: the stored environment's fields (as it wrote them) against
 * the repository file at the head of `branch` (default: the default branch), field by field.
 */
export async function repositoryFileDiff(
  spec: EnvironmentSpec,
  written: unknown,
  branch: string | undefined,
  allowLocal: boolean,
  /** An https, http, git:// or ssh repository's credentials and address policy. */
  remote?: RemoteFetchAccess,
): Promise<{ path: string; branch: string; commit: string; fields: RepositoryFileField[] }> {
  const path = spec.repository.config;
  if (path === undefined)
    throw new BerthError(
      'invalid_input',
      `environment "${spec.name}" has no repository.config: there is no repository file to compare with`,
    );
  const on = branch ?? spec.repository.defaultBranch;
  const { text, commit } = await readRepositoryFile(
    spec.repository.url,
    on,
    path,
    allowLocal,
    undefined,
    remote,
  );
  const file = parseRepositoryConfig(text, path);
  const own =
    written !== null && typeof written === 'object' && !Array.isArray(written)
      ? (written as Record<string, unknown>)
      : (spec as unknown as Record<string, unknown>);
  const fields: RepositoryFileField[] = [];
  for (const field of REPOSITORY_CONFIG_FIELDS) {
    const mine = own[field];
    const theirs = file[field];
    if (mine === undefined && theirs === undefined) continue;
    const state =
      mine === undefined
        ? 'file'
        : theirs === undefined
          ? 'environment'
          : canonicalJson(mine) === canonicalJson(theirs)
            ? 'same'
            : 'both';
    fields.push({
      field,
      state,
      ...(mine !== undefined ? { environment: mine } : {}),
      ...(theirs !== undefined ? { file: theirs } : {}),
    });
  }
  return { path, branch: on, commit, fields };
}
