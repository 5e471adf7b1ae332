import { createHash } from 'node:crypto';
import { z } from 'zod';
import { BerthError } from '../../errors/berth-error.js';
import { canonicalJson } from '../cache/canonical-json.js';
import { formatPath, parseEnvironmentSpec } from './environment-file.js';

/**
 * Templates (issue 16): named sets of environment fields that environments take with
 * `extends: NAME`. A template is written like an environment without what belongs to one
 * environment (repository, secrets, members); it may itself extend another template.
 *
 * Merge rules (an environment over its template, a template over the one it extends): the
 * template's fields are defaults and the environment's win, field by field:
 * - `image`, `setup`, `maintenance`, `verify`, `verifyRequired`, `model`: the environment's when
 *   it writes one, else the template's (a script is replaced whole, never concatenated);
 * - `versions`, `env`, `resources`: keyed; each key the environment writes wins;
 * - `internet`: `access` and `methods` the environment's when written; `presets`, `domains` and
 *   `tunnelOnly`: the union (the template's first);
 * - `services`: keyed by `name`; a service the environment names replaces the template's;
 * - `description` is the template's own and never merged.
 * A chain is at most TEMPLATE_CHAIN_MAX_DEPTH templates long; a cycle is refused.
 *
 * Merging works on the fields as written (before the schema fills in defaults), so a field an
 * environment leaves out takes the template's, not the schema's default.
 */

export const TEMPLATE_CHAIN_MAX_DEPTH = 4;

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Fields a template may hold (each checked by the environment schema, see validateTemplate). */
export const TEMPLATE_FIELDS = [
  'image',
  'versions',
  'setup',
  'maintenance',
  'env',
  'internet',
  'services',
  'resources',
  'verify',
  'verifyRequired',
  'model',
] as const;

/** A template as written: its own name, description and parent, and environment fields. */
export const templateSpecSchema = z.strictObject({
  name: z
    .string()
    .regex(
      NAME,
      'use 1-63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
    ),
  description: z.string().max(2000).optional(),
  extends: z.string().regex(NAME, 'not a template name').optional(),
  ...Object.fromEntries(TEMPLATE_FIELDS.map((field) => [field, z.unknown().optional()])),
});

export type TemplateSpec = { name: string; description?: string; extends?: string } & Partial<
  Record<(typeof TEMPLATE_FIELDS)[number], unknown>
>;

/** What the store keeps of a template. */
export interface Template {
  id: string;
  name: string;
  /** As written (validated). */
  spec: TemplateSpec;
  createdByTokenId: string | null;
  createdAt: string;
  updatedAt: string;
  revision: number;
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function union(a: unknown, b: unknown): unknown {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (!Array.isArray(a) || !Array.isArray(b)) return b;
  const out: unknown[] = [...(a as unknown[])];
  for (const item of b as unknown[]) if (!out.includes(item)) out.push(item);
  return out;
}

function keyedServices(base: unknown, over: unknown): unknown {
  if (!Array.isArray(base) || !Array.isArray(over)) return over ?? base;
  const below: unknown[] = base;
  const above: unknown[] = over;
  const nameOf = (s: unknown) => (isObject(s) && typeof s.name === 'string' ? s.name : undefined);
  const overNames = new Set(above.map(nameOf));
  return [
    ...below.filter((s) => {
      const name = nameOf(s);
      return name === undefined || !overNames.has(name);
    }),
    ...above,
  ];
}

/** `over`'s fields on top of `base`'s, by the rules above (both as written). */
export function mergeFields(base: Fields, over: Fields): Fields {
  const out: Fields = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const below = base[key];
    if (below === undefined) out[key] = value;
    else if (key === 'versions' || key === 'env' || key === 'resources')
      out[key] = isObject(below) && isObject(value) ? { ...below, ...value } : value;
    else if (key === 'services') out[key] = keyedServices(below, value);
    else if (key === 'internet' && isObject(below) && isObject(value)) {
      const merged: Fields = { ...below, ...value };
      for (const list of ['presets', 'domains', 'tunnelOnly'])
        if (below[list] !== undefined || value[list] !== undefined)
          merged[list] = union(below[list], value[list]);
      out[key] = merged;
    } else out[key] = value;
  }
  return out;
}

/** The fields of a template that go into what extends it. */
function inheritedFields(template: TemplateSpec): Fields {
  const out: Fields = {};
  for (const field of TEMPLATE_FIELDS)
    if (template[field] !== undefined) out[field] = template[field];
  return out;
}

function refuse(source: string, path: string, message: string): BerthError {
  return new BerthError('invalid_environment', `${source}: ${path}: ${message}`, {
    issues: [{ path, message }],
  });
}

export type TemplateLookup = (name: string) => Promise<TemplateSpec | undefined>;

/**
 * The templates `start` leads to, nearest first: refused when one is unknown (`extends: no
 * template named "x"`), when the chain comes back to a name already in it (a cycle, listed), or
 * is longer than TEMPLATE_CHAIN_MAX_DEPTH.
 */
export async function templateChain(
  start: string,
  lookup: TemplateLookup,
  source: string,
  from: string[] = [],
): Promise<TemplateSpec[]> {
  const chain: TemplateSpec[] = [];
  const names = [...from];
  for (let name: string | undefined = start; name !== undefined;) {
    if (names.includes(name))
      throw refuse(
        source,
        'extends',
        `templates may not extend each other in a cycle (${[...names, name].join(' → ')})`,
      );
    // `from`: templates already in the chain (a template being written counts itself).
    if (chain.length + from.length >= TEMPLATE_CHAIN_MAX_DEPTH)
      throw refuse(
        source,
        'extends',
        `a chain of templates may be at most ${TEMPLATE_CHAIN_MAX_DEPTH} long (${[...names, name].join(' → ')})`,
      );
    const template = await lookup(name);
    if (template === undefined)
      throw refuse(
        source,
        'extends',
        chain.length === 0
          ? `no template named "${name}"`
          : `no template named "${name}" (extended by template "${names[names.length - 1] ?? ''}")`,
      );
    chain.push(template);
    names.push(name);
    name = template.extends;
  }
  return chain;
}

/** The fields of a chain of templates (nearest first), merged: the nearest wins. */
export function mergeChain(chain: readonly TemplateSpec[]): Fields {
  let merged: Fields = {};
  for (const template of [...chain].reverse())
    merged = mergeFields(merged, inheritedFields(template));
  return merged;
}

/**
 * An environment as written with its template's fields under its own, and the chain's names
 * (nearest first). Without `extends`, the environment as it is and no chain.
 */
export async function resolveExtends(
  written: unknown,
  lookup: TemplateLookup,
): Promise<{ merged: unknown; chain: string[] }> {
  if (!isObject(written) || typeof written.extends !== 'string')
    return { merged: written, chain: [] };
  const chain = await templateChain(written.extends, lookup, 'environment');
  return { merged: mergeFields(mergeChain(chain), written), chain: chain.map((t) => t.name) };
}

/** The repository a template is checked with: it has none of its own. */
const CHECK_REPOSITORY = 'https://template.invalid/template.git';

/**
 * Checks a template as written: its own fields (unknown ones refused), its chain (known
 * templates, no cycle, not too long) and its fields merged down the chain, by the environment
 * schema (as an environment with a placeholder repository; `internet.access` allowlist when the
 * chain leaves it to the environment, so a template may list domains for environments to allow).
 */
export async function validateTemplate(
  value: unknown,
  lookup: TemplateLookup,
): Promise<TemplateSpec> {
  const parsed = templateSpecSchema.safeParse(value);
  const source = `template${isObject(value) && typeof value.name === 'string' ? ` ${value.name}` : ''}`;
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      const path =
        issue.code === 'unrecognized_keys' && issue.keys.length === 1
          ? formatPath([...issue.path, issue.keys[0] ?? ''])
          : formatPath(issue.path);
      const message =
        issue.code === 'unrecognized_keys'
          ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}${issue.keys.some((k) => ['repository', 'secrets', 'members'].includes(k)) ? ' (a template holds no repository, secrets or members: they belong to each environment)' : ''}`
          : issue.message;
      return { path, message };
    });
    const first = issues[0];
    throw new BerthError(
      'invalid_environment',
      `${source}: ${first ? `${first.path}: ${first.message}` : 'invalid'}`,
      { issues },
    );
  }
  const template = parsed.data as TemplateSpec;
  const chain =
    template.extends === undefined
      ? [template]
      : [template, ...(await templateChain(template.extends, lookup, source, [template.name]))];
  const merged = mergeChain(chain);
  const internet = isObject(merged.internet) ? merged.internet : {};
  const check = {
    ...merged,
    name: 'template-check',
    repository: CHECK_REPOSITORY,
    ...(internet.access === undefined && Object.keys(internet).length > 0
      ? { internet: { ...internet, access: 'allowlist' } }
      : {}),
  };
  parseEnvironmentSpec(check, source);
  return template;
}

/** A template's content as the cache key holds it (name → digest of the template as written). */
export function templateDigest(template: TemplateSpec): string {
  return createHash('sha256')
    .update(`berth-template-v1\0${canonicalJson(template)}`, 'utf8')
    .digest('hex');
}

/** name → digest of each template in an environment's chain (part of its cache key). */
export async function templateDigests(
  spec: { extends?: string | undefined },
  lookup: TemplateLookup,
): Promise<Record<string, string>> {
  if (spec.extends === undefined) return {};
  const chain = await templateChain(spec.extends, lookup, 'environment');
  return Object.fromEntries(chain.map((t) => [t.name, templateDigest(t)]));
}
