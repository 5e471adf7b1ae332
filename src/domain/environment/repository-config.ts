import { createHash } from 'node:crypto';
import * as yaml from 'yaml';
import { BerthError } from '../../errors/berth-error.js';
import { specFromComposed, parseEnvironmentSpec } from './environment-file.js';
import type { EnvironmentSpec } from './environment-spec.js';
import { composeEnvironmentYaml, ENVIRONMENT_YAML_LIMITS } from './environment-yaml.js';
import { mergeFields } from './environment-template.js';

/**
 * `repository.config` (issue 16 item 1): a file in the repository (`.berth/environment.yaml`)
 * whose fields the environment takes at the commit its cache is built from.
 *
 * Threat model. The file is repository content: anyone who can push to the default branch
 * writes it, and it is read on the server's machine. It is parsed with the limits of
 * environment files (size, keys, nesting, aliases; environment-yaml.ts), never evaluated, and may
 * hold only REPOSITORY_CONFIG_FIELDS: never secrets, credentials, members, triggers, the
 * repository or the name, which stay in the stored environment (and the stored environment's
 * own fields win over the file's). Its fields are then checked by the environment schema like
 * any file, with the field path, line and column.
 */

export const REPOSITORY_CONFIG_FIELDS = [
  'image',
  'versions',
  'setup',
  'maintenance',
  'env',
  'internet',
  'services',
  'resources',
  'verify',
] as const;

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

/** The repository file's fields (as written), or the refusal with path, line and column. */
export function parseRepositoryConfig(text: string, path: string): Fields {
  const source = `repository file ${path}`;
  const composed = composeEnvironmentYaml(yaml, text, ENVIRONMENT_YAML_LIMITS);
  if (!composed.ok) specFromComposed(text, composed, source);
  if (!composed.ok) throw new BerthError('invalid_environment', `${source}: invalid`);
  const value = composed.value ?? {};
  if (!isObject(value))
    throw new BerthError(
      'invalid_environment',
      `${source}: (root): the file must be a mapping of fields (line 1, column 1)`,
      { issues: [{ path: '(root)', message: 'the file must be a mapping of fields', line: 1 }] },
    );
  for (const key of Object.keys(value)) {
    if ((REPOSITORY_CONFIG_FIELDS as readonly string[]).includes(key)) continue;
    const at = composed.positions?.[JSON.stringify([key])]?.key;
    const where = at === undefined ? undefined : lineAndColumn(text, at);
    const message = `not a field of a repository file (it may hold ${REPOSITORY_CONFIG_FIELDS.join(', ')}; the rest stays in the stored environment)`;
    throw new BerthError(
      'invalid_environment',
      `${source}: ${key}: ${message}${where ? ` (line ${where.line}, column ${where.column})` : ''}`,
      { issues: [{ path: key, message, ...where }] },
    );
  }
  // The file alone through the schema, for line and column (a placeholder name and repository;
  // internet.access left to the environment is taken as allowlist, as a template's).
  const internet = isObject(value.internet) ? value.internet : undefined;
  specFromComposed(
    text,
    {
      ok: true,
      value: {
        ...value,
        name: 'repository-file',
        repository: 'https://repository.invalid/repository-file.git',
        ...(internet !== undefined && internet.access === undefined
          ? { internet: { ...internet, access: 'allowlist' } }
          : {}),
      },
      ...(composed.positions ? { positions: composed.positions } : {}),
    },
    source,
  );
  return value;
}

/** The file's content as the cache key holds it. */
export function repositoryConfigDigest(text: string): string {
  return createHash('sha256').update(`berth-repository-file-v1\0${text}`, 'utf8').digest('hex');
}

/**
 * The environment that runs: the template fields under the repository file's, under what the
 * environment wrote (its own fields win); the repository, secrets and members stay the stored
 * environment's.
 */
export function specWithRepositoryConfig(
  stored: EnvironmentSpec,
  templateFields: Fields,
  fileFields: Fields,
  written: Fields,
  path: string,
): EnvironmentSpec {
  const merged = mergeFields(mergeFields(templateFields, fileFields), written);
  return parseEnvironmentSpec(
    {
      ...merged,
      repository: stored.repository,
      secrets: stored.secrets,
      members: stored.members,
    },
    `environment with repository file ${path}`,
  );
}
