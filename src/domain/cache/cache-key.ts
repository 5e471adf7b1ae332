import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

/**
 * The cache key of an environment (DESIGN §3): a SHA-256 over a canonical JSON of everything that
 * affects the state right after the setup script. Changing any part gives another key, so a
 * cache entry is never used for a setup it did not come from.
 *
 * Threat model: the key parts are stored beside the cache entry (to explain a rebuild) and the key
 * itself is shown to users. Secret values must never appear in them: a secret enters the parts
 * only as a salted SHA-256 of its name and value (the salt is the environment id, so equal
 * secrets of two environments do not give equal digests and a table of guesses is per
 * environment). A guess of a weak secret can still be checked against its digest by someone who
 * reads the store; the store is trusted with the sealed secrets already, so this adds no reader.
 */

export const CACHE_KEY_VERSION = 1;

export interface ScriptPart {
  script: string;
  strict: boolean;
}

export interface CacheKeyParts {
  version: number;
  /** The base image's content id (`sha256:…`), not its tag: a rebuilt image invalidates. */
  baseImage: string;
  repository: { url: string; defaultBranch: string };
  versions: Record<string, string>;
  setup: ScriptPart | null;
  maintenance: ScriptPart | null;
  env: Record<string, string>;
  /** name → salted digest of name and value. */
  secrets: Record<string, string>;
  /**
   * The templates the environment extends: name → digest of the template as written
   * (environment-template.ts). Absent without `extends`, so other keys stay as they were.
   */
  templates?: Record<string, string>;
  /** `repository.config`: the file's path and the digest of its content at the built commit. */
  repositoryFile?: { path: string; digest: string };
}

export interface CacheKeyInput {
  environmentId: string;
  baseImageDigest: string;
  repository: { url: string; defaultBranch: string };
  versions: Readonly<Partial<Record<string, string>>>;
  setup?: ScriptPart | undefined;
  maintenance?: ScriptPart | undefined;
  env: Readonly<Record<string, string>>;
  /** name → value; only digests leave this function. */
  secrets: Readonly<Record<string, string>>;
  /** name → digest of each template in the environment's chain (`templateDigests`). */
  templates?: Readonly<Record<string, string>> | undefined;
  repositoryFile?: { path: string; digest: string } | undefined;
}

export function secretDigest(salt: string, name: string, value: string): string {
  return createHash('sha256')
    .update(`berth-secret-v1\0${salt}\0${name}\0${value}`, 'utf8')
    .digest('hex');
}

function definedEntries(record: Readonly<Partial<Record<string, string>>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(record)) if (v !== undefined) out[k] = v;
  return out;
}

export function cacheKeyParts(input: CacheKeyInput): CacheKeyParts {
  const secrets: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.secrets)) {
    secrets[name] = secretDigest(input.environmentId, name, value);
  }
  return {
    version: CACHE_KEY_VERSION,
    baseImage: input.baseImageDigest,
    repository: { url: input.repository.url, defaultBranch: input.repository.defaultBranch },
    versions: definedEntries(input.versions),
    setup: input.setup ? { script: input.setup.script, strict: input.setup.strict } : null,
    maintenance: input.maintenance
      ? { script: input.maintenance.script, strict: input.maintenance.strict }
      : null,
    env: { ...input.env },
    secrets,
    ...(input.templates !== undefined && Object.keys(input.templates).length > 0
      ? { templates: { ...input.templates } }
      : {}),
    ...(input.repositoryFile !== undefined
      ? { repositoryFile: { path: input.repositoryFile.path, digest: input.repositoryFile.digest } }
      : {}),
  };
}

/** The key: hex SHA-256 of the parts' canonical JSON. */
export function cacheKey(parts: CacheKeyParts): string {
  return createHash('sha256').update(canonicalJson(parts), 'utf8').digest('hex');
}

function recordChanges(
  kind: string,
  before: Record<string, string>,
  after: Record<string, string>,
): string[] {
  const out: string[] = [];
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  for (const name of names) {
    const a = before[name];
    const b = after[name];
    if (a === undefined) out.push(`${kind} ${name} added`);
    else if (b === undefined) out.push(`${kind} ${name} removed`);
    else if (a !== b) out.push(`${kind} ${name} changed`);
  }
  return out;
}

function scriptChange(kind: string, before: ScriptPart | null, after: ScriptPart | null): string[] {
  if (before === null && after === null) return [];
  if (before === null) return [`${kind} script added`];
  if (after === null) return [`${kind} script removed`];
  const out: string[] = [];
  if (before.script !== after.script) out.push(`${kind} script changed`);
  if (before.strict !== after.strict)
    out.push(`${kind} strict mode ${after.strict ? 'turned on' : 'turned off'}`);
  return out;
}

/**
 * What differs between the parts of an old cache entry and the parts wanted now, in words for the
 * log ("cache rebuilt because: setup script changed, variable NODE_ENV changed"). Empty when the
 * parts are equal. Never includes a value of a variable or secret.
 */
export function explainChange(before: CacheKeyParts, after: CacheKeyParts): string[] {
  const out: string[] = [];
  if (before.version !== after.version) out.push('cache format changed');
  if (before.baseImage !== after.baseImage) out.push('base image changed');
  if (before.repository.url !== after.repository.url) out.push('repository changed');
  if (before.repository.defaultBranch !== after.repository.defaultBranch)
    out.push('default branch changed');
  for (const change of recordChanges('version', before.versions, after.versions))
    out.push(change.replace(/^version (\S+)/, '$1 version'));
  out.push(...scriptChange('setup', before.setup, after.setup));
  out.push(...scriptChange('maintenance', before.maintenance, after.maintenance));
  out.push(...recordChanges('variable', before.env, after.env));
  out.push(...recordChanges('secret', before.secrets, after.secrets));
  out.push(...recordChanges('template', before.templates ?? {}, after.templates ?? {}));
  const file = (parts: CacheKeyParts) =>
    parts.repositoryFile ? { [parts.repositoryFile.path]: parts.repositoryFile.digest } : {};
  out.push(...recordChanges('repository file', file(before), file(after)));
  return out;
}
