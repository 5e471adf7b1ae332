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

/**
 * The repository file of an environment with `repository.config`, read at the commit its cache
 * is built from (the default branch's head), before the cache key: its fields merged into the
 * spec the attempt runs with, its content (digest) part of the key. Read on the server's machine
 * from a local repository with git's plumbing (argv only, no hooks, no working tree: `cat-file`
 * of the blob at the commit; a symlink is its target's text, never followed; at most the size of
 * an environment file). Other repositories are refused when the environment is written
 * (environment-service.ts), so none reaches here.
 */

export interface RepositoryConfigNow {
  spec: EnvironmentSpec;
  /** For the cache key: the file's path and the digest of its content. */
  file: { path: string; digest: string };
  commit: string;
  /**
   * When the task's branch has another file than the default branch's: what the attempt says
   * (it runs the default branch's file for every phase; the branch's is not used yet).
   */
  branchNote?: string;
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

/** The file's text at the default branch's head of a local repository, and that commit. */
export async function readRepositoryFile(
  repository: string,
  branch: string,
  path: string,
  allowLocal: boolean,
  signal?: AbortSignal,
): Promise<{ text: string; commit: string }> {
  const location = parseRepositoryLocation(repository, allowLocal);
  if (location.kind !== 'local')
    throw refused(
      path,
      'a repository file is read from local repositories only (not built for others)',
    );
  const commit = await localBranchHead(location.location, branch, signal);
  if (commit === undefined)
    throw refused(path, `the repository has no branch "${branch}" to read the file from`);
  const object = `${commit}:${path}`;
  const type = await git(['-C', location.location, 'cat-file', '-t', object], signal).catch(
    () => undefined,
  );
  if (type?.trim() !== 'blob')
    throw refused(
      path,
      type === undefined
        ? `not in the repository at commit ${commit.slice(0, 12)} (branch ${branch})`
        : `not a file at commit ${commit.slice(0, 12)} (a ${type.trim()})`,
    );
  const size = Number(
    (await git(['-C', location.location, 'cat-file', '-s', object], signal)).trim(),
  );
  if (!(size <= ENVIRONMENT_YAML_LIMITS.maxBytes))
    throw refused(
      path,
      `the file is ${size} bytes; at most ${ENVIRONMENT_YAML_LIMITS.maxBytes} are accepted`,
    );
  const text = await git(['-C', location.location, 'cat-file', 'blob', object], signal);
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
  options: { allowLocal: boolean; signal?: AbortSignal; taskBranch?: string | undefined },
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
  let branchNote: string | undefined;
  const branch = options.taskBranch;
  if (branch !== undefined && branch !== spec.repository.defaultBranch) {
    const other = await readRepositoryFile(spec.repository.url, branch, path, options.allowLocal)
      .then((file) => repositoryConfigDigest(file.text))
      .catch(() => undefined);
    if (other !== digest)
      branchNote = `${path} differs on the task's branch ${branch} (${other === undefined ? 'not there' : 'other content'}) from ${spec.repository.defaultBranch}'s: this attempt runs ${spec.repository.defaultBranch}'s for every phase (berth env diff --branch ${branch} shows the difference; using the branch's file for maintenance and the agent is not built yet)`;
  }
  return {
    spec: specWithRepositoryConfig(spec, templates, fields, own, path),
    file: { path, digest },
    commit,
    ...(branchNote !== undefined ? { branchNote } : {}),
  };
}

/**
 * When an environment with `repository.config` is written: refused for a repository that is not
 * local (not built for others), and for a local one whose default branch exists, the file must
 * be there and valid (refused with the path, or the field path, line and column). A branch not
 * there yet is left to the attempt.
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
  if (path === undefined) return;
  if (!(kind.ok && kind.kind === 'local'))
    throw refused(
      path,
      'a repository file is read from local repositories only in this version (not built for https, http, git and ssh repositories)',
    );
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
): Promise<{ path: string; branch: string; commit: string; fields: RepositoryFileField[] }> {
  const path = spec.repository.config;
  if (path === undefined)
    throw new BerthError(
      'invalid_input',
      `environment "${spec.name}" has no repository.config: there is no repository file to compare with`,
    );
  const on = branch ?? spec.repository.defaultBranch;
  const { text, commit } = await readRepositoryFile(spec.repository.url, on, path, allowLocal);
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
